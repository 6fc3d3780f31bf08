"""Fine-tuning: the training loop, and (from step 3) the job runner on Ray Train."""
