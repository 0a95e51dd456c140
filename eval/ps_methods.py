"""A restored `train.sdps` run as one jitted photometric-stereo method (for the eval commands).

`Method(label, run)(images, mask, dirs, ints)` returns a dict with ``normals`` (B, H, W, 3)
when the run estimates normals, and ``dirs`` / ``intensities`` (LCNet's argmax lights) when it
has an LCNet part. ``dirs`` / ``ints`` (the true lights) are used only by a ``psfcn`` run.

``lights`` swaps the lights a ``nenet`` run's NENet sees (ablations, no retraining): ``"true"``
feeds it the true directions and intensities (calibrated use of the trained NENet), a restored
``lcnet`` run feeds it that LCNet's argmax lights instead of the LCNet it was trained with.
``mirror`` averages every network's answers on the scene and on its left-right mirror image
(`bioface_jax.models.sdps_mirror`).
"""

from __future__ import annotations


class Method:
  """A restored run as one jitted function (images, mask, dirs, ints) -> outputs."""

  def __init__(self, label, run, lights=None, mirror=False):
    import jax  # pylint: disable=g-import-not-at-top
    from bioface_jax.models import sdps, sdps_mirror  # pylint: disable=g-import-not-at-top
    self.label, self.run = label, run
    task = run.config.task
    self.kind = task
    lcnet_model, lcnet_params = run.lcnet_model, run.lcnet_params
    if lights is not None:
      if task != "nenet":
        raise ValueError(f"{label}: swapping the lights needs a nenet run, got {task!r}")
      if lights == "true":
        lcnet_model = lcnet_params = None
      elif getattr(lights, "model", None) is not None and lights.model.net == "lcnet":
        lcnet_model, lcnet_params = lights.model, lights.params
      else:
        raise ValueError(f"{label}: lights must be 'true' or a restored lcnet run")
    self.lcnet_params = lcnet_params
    self.params_count = sdps.param_count(run.params) + (
        sdps.param_count(lcnet_params) if lcnet_params is not None else 0)

    def fn(params, lc_params, images, mask, dirs, ints):
      batch = {"images": images, "mask": mask, "dirs": dirs, "intensities": ints}
      out = {}
      if task == "nenet" and lcnet_model is not None:
        out["dirs"], out["intensities"] = sdps_mirror.lcnet_lights(lc_params, batch,
                                                                   lcnet_model, mirror)
        batch = dict(batch, dirs=out["dirs"], intensities=out["intensities"])
      elif task == "lcnet":
        return dict(zip(("dirs", "intensities"),
                        sdps_mirror.lcnet_lights(params, batch, run.model, mirror)))
      if task == "fused":
        res = sdps_mirror.fused_predict(params, batch, run.model, mirror)
      else:
        res = {"normals": sdps_mirror.nenet_normals(params, batch, run.model, mirror)}
      out["normals"] = res["normals"]
      if "dirs" in res:
        out["dirs"], out["intensities"] = res["dirs"], res["intensities"]
      return out

    self._fn = jax.jit(fn)

  def __call__(self, images, mask, dirs, ints):
    import jax  # pylint: disable=g-import-not-at-top
    return jax.device_get(self._fn(self.run.params, self.lcnet_params, images, mask, dirs,
                                   ints))
