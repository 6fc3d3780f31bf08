"""Task handlers: the model code of each task (torch and transformers live only here)."""
