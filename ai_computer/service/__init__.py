"""The HTTP service (`ai-computer serve`) and the MCP server, on the SDK."""
