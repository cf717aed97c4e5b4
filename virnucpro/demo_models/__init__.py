"""Small random-init models in the real on-disk formats, for the demo, tests and
benchmarks: no pretrained weights can be downloaded where those run."""
