"""The agentic trading pipeline: Faust agents, codecs, topics and settings."""
