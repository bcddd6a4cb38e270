"""Client limits (requests and tokens per window) and budgets, counted in the store."""
