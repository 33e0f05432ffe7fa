"""What every workload runs on: device and precision, the CPU speed tricks (attention, dropout,
allocator), batching and the optimiser schedule, shared by fine-tuning, pretraining and inference."""
