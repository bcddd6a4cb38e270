"""HTTP endpoints, one module per family; resources stay thin."""
