"""From measured levels to decisions: configuration identity, results, cost, headroom, imports, recommendations."""
