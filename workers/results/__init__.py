"""Results backends: where outputs, checkpoints and the state snapshot go off the machine."""
