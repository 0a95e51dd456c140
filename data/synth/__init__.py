"""Physics-based synthetic faces: mean-face geometry (`geometry`) and UV-space skin maps (`appearance`).

These produce exact ground truth (normals, mask, melanin/haemoglobin maps, shading, specular) for
offline training data and the benchmark; `data.synth_faces` assembles them with the renderer.
"""
