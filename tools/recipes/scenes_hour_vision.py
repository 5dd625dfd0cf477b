"""The bundled model's first stage: the image encoder alone, from random weights, on the per-patch
labels (colour, shape, size, rank from the left and thirds of the object under each patch), with
objects recoloured out of the palette and grounds relit, so that colour is learnt apart from the
ground's lightness and shape apart from colour. 24 minutes on 2 cores of an AVX512-BF16 Zen 5:

    export OPENBLAS_NUM_THREADS=1
    /usr/bin/python3 -m tools.train tools/recipes/scenes_hour_vision.py

The run that made the bundle had a 24-minute budget (--minutes 24), which gave 5340 steps there;
`steps` below reproduces that schedule on any machine. Then tools/recipes/scenes_hour_joint.py.
"""
vision_only = True
bf16 = True
decolor = 0.2
rehue = 0.3
relight = 0.5
lr = 1e-3
warmup = 50
batch = 128
steps = 5340
seed = 51
workers = 1  # each data worker draws from its own seeded stream: the batches depend on it
threads = 1
out = "tools/checkpoints/hour-a.pt"
