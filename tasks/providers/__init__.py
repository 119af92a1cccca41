"""Model providers, one module each; tasks.llm_client is their only caller."""
