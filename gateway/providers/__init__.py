"""Provider adapters: pure translation between the OpenAI shape and each protocol."""
