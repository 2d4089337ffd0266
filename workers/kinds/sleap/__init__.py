"""SLEAP pose estimation: training with sleap-nn and inference on videos."""
