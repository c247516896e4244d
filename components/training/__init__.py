"""Training one fold: dataset, loop, optimisers, schedulers, early stopping, checkpoints, device."""
