"""A restored `train.sdps` run as one jitted photometric-stereo method (for the eval commands).

`Method(label, run)(images, mask, dirs, ints)` returns a dict with ``normals`` (B, H, W, 3)
when the run estimates normals, and ``dirs`` / ``intensities`` (LCNet's argmax lights) when it
has an LCNet part. ``dirs`` / ``ints`` (the true lights) are used only by a ``psfcn`` run.
"""

from __future__ import annotations


class Method:
  """A restored run as one jitted function (images, mask, dirs, ints) -> outputs."""

  def __init__(self, label, run):
    import jax  # pylint: disable=g-import-not-at-top
    from bioface_jax.models import sdps  # pylint: disable=g-import-not-at-top
    self.label, self.run = label, run
    task = run.config.task
    self.kind = task
    self.params_count = sdps.param_count(run.params) + (
        sdps.param_count(run.lcnet_params) if run.lcnet_params is not None else 0)

    def fn(params, lc_params, images, mask, dirs, ints):
      batch = {"images": images, "mask": mask, "dirs": dirs, "intensities": ints}
      out = {}
      if task == "nenet":
        lo = sdps.apply(lc_params, batch, run.lcnet_model)
        out["dirs"], out["intensities"] = sdps.lcnet_predict(lo)
        batch = dict(batch, dirs=out["dirs"], intensities=out["intensities"])
      elif task == "lcnet":
        return dict(zip(("dirs", "intensities"),
                        sdps.lcnet_predict(sdps.apply(params, batch, run.model))))
      res = sdps.predict(params, batch, run.model)
      out["normals"] = res["normals"]
      if "dirs" in res:
        out["dirs"], out["intensities"] = res["dirs"], res["intensities"]
      return out

    self._fn = jax.jit(fn)

  def __call__(self, images, mask, dirs, ints):
    import jax  # pylint: disable=g-import-not-at-top
    return jax.device_get(self._fn(self.run.params, self.run.lcnet_params, images, mask, dirs,
                                   ints))
