"""What the user writes: the suite, the inventory, the sampling option."""
