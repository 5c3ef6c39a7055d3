"""chatrelay's benchmark: fake OpenRouter, bare relay baseline, load generator and driver."""
