"""Model resolution, target strategies, key pools and the failover loop."""
