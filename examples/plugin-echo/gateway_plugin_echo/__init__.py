"""An example plugin for the LLM gateway: the ``echo`` provider type and the ``collect`` sink."""
