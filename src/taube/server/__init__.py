"""The Taube server: HTTP API and WebSocket gateway around the core."""
