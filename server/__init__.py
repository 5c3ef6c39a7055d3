"""chatrelay: relay OpenRouter's streaming chat completions over HTTP and WebSocket."""
