"""bioface_jax: BioFaceNet (Alotaibi & Smith, BMVC 2019) in JAX/Flax.

The library is import-safe: no flags, no file I/O and no prints at import time.
Sub-packages:

* ``bioface_jax.physics`` - the fixed, differentiable spectral face renderer.
* ``bioface_jax.models`` - the BioFaceNet U-Net and its self-supervised loss.
* ``bioface_jax.fit`` - the Alotaibi & Smith multispectral least-squares fit.
* ``bioface_jax.train_lib`` - the model-agnostic data-parallel trainer.
"""

__version__ = "0.1.0"
