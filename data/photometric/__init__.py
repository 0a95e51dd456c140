"""Photometric-stereo data: synthetic scenes with exact ground truth (`shapes`, `synth`) and the
DiLiGenT benchmark reader (`diligent`)."""
