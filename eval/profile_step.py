"""Where a jitted train step spends its time: per-HLO-operation times from the JAX profiler.

  python -m eval.profile_step --model face_vae                    # 144 px, batch 16 (authors')
  python -m eval.profile_step --model face_vae --vae_preset cpu   # 48 px, width 0.25 (training)
  python -m eval.profile_step --model nenet                       # N = 16 of 64², B = 2, α = 1
  python -m eval.profile_step --model lcnet|prnet [--top 30] [--steps 2] [--hlo OUT.txt]

Builds the same train step as the benchmark commands (`eval.bench_vae`, `eval.bench_sdps`,
`eval.bench_prnet`), compiles it once, runs it ``--steps`` times under ``jax.profiler.trace``
with XLA:CPU's per-thunk trace events switched on (``--xla_cpu_enable_xprof_traceme``, set here
before JAX starts), and joins each traced operation with the optimised HLO (its layer from the
metadata, its shape and convolution window). It prints the wall time per step, the total by
pass (forward / backward / update) and kind (convolution forward, backward-input,
backward-filter, matmul, other), and the ``--top`` most expensive operations. Times of
operations that ran concurrently on the two cores add up to more than the wall time.
"""

from __future__ import annotations

import collections
import gzip
import json
import os
import pathlib
import re
import resource
import sys
import tempfile
import time

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_xprof_traceme=true").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

from train import absl_app  # noqa: E402

FLAGS = flags.FLAGS
MODELS = ("face_vae", "nenet", "lcnet", "prnet")


def define_flags():
  flags.DEFINE_enum("model", "face_vae", MODELS, "Which train step to profile.")
  flags.DEFINE_integer("size", 0, "Image side (0: the model's benchmark default).")
  flags.DEFINE_integer("batch", 0, "Batch size (0: the benchmark default).")
  flags.DEFINE_float("width", 1.0, "Width multiplier α of nenet / lcnet (0.25: the CPU size).")
  flags.DEFINE_enum("vae_preset", "paper", ("paper", "cpu", "cpu72"), "face_vae: the network of "
                    "this eval.bench_vae preset (paper: 144 px, width 1; cpu: the 48 px training "
                    "preset, width 0.25, latent 128; --size overrides its side).")
  flags.DEFINE_integer("images", 16, "N, images per photometric-stereo sample (nenet, lcnet).")
  flags.DEFINE_integer("steps", 2, "Profiled steps (after one warm step).")
  flags.DEFINE_bool("inference", False, "Profile the benchmark's inference call instead of the "
                    "train step (face_vae: `face_vae.reconstruct` at batch 32).")
  flags.DEFINE_integer("top", 25, "How many of the most expensive operations to list.")
  flags.DEFINE_string("hlo", "", "Also write the optimised HLO text here.")
  flags.DEFINE_bool("xla_cpu_options", True, "Compile with "
                    "bioface_jax.xla_options.cpu_compiler_options() (convolutions to Eigen).")
  absl_app.define_huge_pages_flag()


_INSTR = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (\S+?)(?:\{[^}]*\})? (\w[\w\-]*)\((.*)$")
_COMP = re.compile(r"^(?:ENTRY )?%([\w.\-]+) .*\{$")


def parse_hlo(text: str) -> dict[str, dict]:
  """Instruction name -> {shape, opcode, op_name, window, calls, computation, dims}."""
  instrs, comp = {}, None
  for line in text.splitlines():
    m = _COMP.match(line)
    if m:
      comp = m.group(1)
      continue
    m = _INSTR.match(line)
    if not m:
      continue
    name, shape, opcode, rest = m.groups()
    meta = re.search(r'op_name="([^"]*)"', rest)
    window = re.search(r"window=\{([^}]*)\}", rest)
    calls = re.search(r"calls=%([\w.\-]+)", rest)
    dims = re.search(r"dim_labels=(\S+?),", rest)
    instrs[name] = dict(shape=shape, opcode=opcode, op_name=meta.group(1) if meta else "",
                        window=window.group(1) if window else "", computation=comp,
                        calls=calls.group(1) if calls else "", dims=dims.group(1) if dims else "")
  return instrs


def _dims(shape: str) -> tuple[int, ...]:
  m = re.search(r"\[([\d,]*)\]", shape)
  return tuple(int(d) for d in m.group(1).split(",") if d) if m else ()


def classify(name: str, instrs: dict, batch_sizes: set, inference: bool = False
             ) -> tuple[str, str, str, str]:
  """(pass, kind, layer, detail) of one traced operation.

  A convolution of the backward pass whose output batch dimension is an activation batch size
  is an input gradient; otherwise (the output is a kernel) it is a weight gradient. The
  window's dilation is named after the operand it spreads out ("dilated input": zeros between
  the input's pixels; "dilated window": gaps between the kernel's taps), not after the pass.
  In an `inference` program every operation with metadata is the forward pass.
  """
  ins = instrs[name]
  inner = ins
  if ins["opcode"] == "fusion" and ins["calls"]:
    body = [i for i in instrs.values() if i["computation"] == ins["calls"]]
    for opcode in ("convolution", "dot"):
      hits = [i for i in body if i["opcode"] == opcode]
      if hits:
        inner = hits[0]
        break
  op_name = inner["op_name"] or ins["op_name"]
  pas = ("backward" if "transpose(jvp(" in op_name else "forward" if "jvp(" in op_name
         else ("forward" if inference else "update") if op_name else "?")
  layer = re.sub(r"^.*?\)\)?/", "", op_name) if op_name else "(no metadata)"
  layer = re.sub(r"/(conv_general_dilated|dot_general|\w+)$", "", layer)
  if inner["opcode"] == "convolution":
    out_labels = inner["dims"].split("->")[-1]
    out_batch = _dims(inner["shape"])[out_labels.index("b")] if "b" in out_labels else -1
    if pas == "forward":
      kind = "conv forward"
    else:
      pas = "backward"
      kind = "conv bwd-input" if out_batch in batch_sizes else "conv bwd-filter"
    if "lhs_dilate" in inner["window"]:
      kind += " (dilated input)"
    elif "rhs_dilate" in inner["window"]:
      kind += " (dilated window)"
  elif inner["opcode"] == "dot":
    kind = "matmul"
  else:
    kind = "other"
  detail = f"{ins['shape'].split('{')[0]} {inner['window']}".strip()
  return pas, kind, layer, detail


def build(model: str, options: dict):
  """(jitted step, args, activation batch sizes) for the model's benchmark train step."""
  from eval import bench_prnet  # pylint: disable=g-import-not-at-top
  from eval import bench_sdps  # pylint: disable=g-import-not-at-top
  from eval import bench_vae  # pylint: disable=g-import-not-at-top
  if model == "face_vae" and FLAGS.inference:
    import jax  # pylint: disable=g-import-not-at-top
    from bioface_jax.models import face_vae  # pylint: disable=g-import-not-at-top
    batch = FLAGS.batch or 32
    config = bench_vae.preset_config(FLAGS.vae_preset, FLAGS.size or None)
    images = jax.device_put(bench_vae.inputs(config, batch)[0])
    params, stats = face_vae.init(jax.random.key(0), images.shape, config)
    infer = jax.jit(lambda p, s, x: face_vae.reconstruct(p, s, x, config),
                    compiler_options=options)
    return infer, (params, stats, images), {batch}
  if FLAGS.inference:
    raise ValueError(f"--inference is implemented for --model face_vae only, not {model}")
  if model == "face_vae":
    batch = FLAGS.batch or 16
    step, args, _ = bench_vae.make_jax_step(
        bench_vae.preset_config(FLAGS.vae_preset, FLAGS.size or None), batch, options)
    return step, args, {batch}
  if model in ("nenet", "lcnet"):
    size, batch = FLAGS.size or 64, FLAGS.batch or 2
    step, args, _ = bench_sdps.make_jax_step(model, FLAGS.width, size, FLAGS.images, batch, options)
    return step, args, {batch, batch * FLAGS.images}
  size, batch = FLAGS.size or 256, FLAGS.batch or 4
  step, args, _ = bench_prnet.make_jax_step("resfcn", size, 1.0, batch, options)
  return step, args, {batch}


def main(argv):
  del argv
  absl_app.restart_with_huge_pages_if_asked()  # returns once the tunable is set
  import jax  # pylint: disable=g-import-not-at-top
  from bioface_jax import xla_options  # pylint: disable=g-import-not-at-top
  options = xla_options.cpu_compiler_options() if FLAGS.xla_cpu_options else {}
  print(f"compiler options: {options or 'XLA defaults'}; GLIBC_TUNABLES: "
        f"{os.environ.get('GLIBC_TUNABLES', 'unset')}")
  step, args, batch_sizes = build(FLAGS.model, options)
  t0 = time.perf_counter()
  compiled = step.lower(*args).compile()
  print(f"{FLAGS.model}: compiled in {time.perf_counter() - t0:.1f} s", flush=True)
  instrs = parse_hlo(compiled.as_text())
  if FLAGS.hlo:
    pathlib.Path(FLAGS.hlo).write_text(compiled.as_text())
  jax.block_until_ready(compiled(*args))
  usage0 = resource.getrusage(resource.RUSAGE_SELF)
  t0 = time.perf_counter()
  jax.block_until_ready(compiled(*args))
  untraced = time.perf_counter() - t0
  usage1 = resource.getrusage(resource.RUSAGE_SELF)
  print(f"one step without the tracer: {untraced * 1e3:.0f} ms wall, "
        f"{usage1.ru_utime - usage0.ru_utime:.2f} s user, "
        f"{usage1.ru_stime - usage0.ru_stime:.2f} s kernel CPU, "
        f"{usage1.ru_minflt - usage0.ru_minflt:,} minor page faults", flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      for _ in range(FLAGS.steps):
        jax.block_until_ready(compiled(*args))
    wall = (time.perf_counter() - t0) / FLAGS.steps
    trace = sorted(pathlib.Path(tmp).rglob("*.json.gz"))[-1]
    events = json.load(gzip.open(trace))
  events = events["traceEvents"] if isinstance(events, dict) else events
  per_op, unmatched = collections.Counter(), collections.Counter()
  for e in events:
    if e.get("ph") == "X":
      (per_op if e.get("name") in instrs else unmatched)[e.get("name")] += (
          e.get("dur", 0) / 1e3 / FLAGS.steps)  # ms per step
  print("other trace events (ms per step):",
        ", ".join(f"{k} {v:.0f}" for k, v in unmatched.most_common(8)))
  total = sum(per_op.values())
  print(f"wall {wall * 1e3:.0f} ms per step (with the tracer on); traced operations add up to "
        f"{total:.0f} ms; load average {os.getloadavg()[0]:.1f}\n")
  by_kind = collections.Counter()
  rows = []
  for name, ms in per_op.items():
    pas, kind, layer, detail = classify(name, instrs, batch_sizes, FLAGS.inference)
    by_kind[(pas, kind)] += ms
    rows.append((ms, name, pas, kind, layer, detail))
  print("| pass | kind | ms per step | share |\n|---|---|---|---|")
  for (pas, kind), ms in by_kind.most_common():
    print(f"| {pas} | {kind} | {ms:.0f} | {ms / total:.0%} |")
  print("\n| ms | share | pass | kind | layer | HLO op | shape, window |\n|---|---|---|---|---|---|---|")
  for ms, name, pas, kind, layer, detail in sorted(rows, reverse=True)[:FLAGS.top]:
    print(f"| {ms:.1f} | {ms / total:.1%} | {pas} | {kind} | {layer} | {name} | {detail} |")
  return 0


if __name__ == "__main__":
  define_flags()
  absl_app.run(main)
