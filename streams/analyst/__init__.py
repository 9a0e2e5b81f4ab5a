"""The Analyst: news in, memory of news in pgvector (as of each moment), sentiment, replayable votes."""
