"""Shared code for the CNN design course notebooks.

One module per concern; a notebook imports the ones it needs:

* ``device``      pick CUDA / MPS / CPU, seed everything
* ``budget``      compute profiles (tiny, cpu, gpu)
* ``data``        CIFAR-10 or the offline synthetic set, data loaders
* ``training``    train / evaluate with a progress bar, History
* ``plotting``    learning curves, image grids, feature maps
* ``inspection``  parameter counts, FLOPs, shape tracing
* ``pictures``    a real photograph available offline
* ``widgets``     interactive explorers
* ``scaling``     per-stage parameters, MACs and shapes of a network; its drawing
* ``ablation``    one training recipe over several seeds, and the seed-spread verdict
* ``transfer``    transfer-learning data and models, with an offline fallback
* ``checks``      instant-feedback checks, a module or a few per notebook
"""
