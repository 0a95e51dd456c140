"""Published DiLiGenT numbers (sdps-spec.md §11) and the seed report's tables, for printing
beside our measurements. Degrees unless stated; 96 images unless stated."""

OBJECTS = ("ball", "cat", "pot1", "bear", "pot2", "buddha", "goblet", "reading", "cow", "harvest")

DILIGENT = {
    "SDPS-Net": (2.77, 8.06, 8.14, 6.89, 7.50, 8.97, 11.91, 14.90, 8.48, 17.43, 9.51),
    "UPS-FCN (one stage)": (6.62, 14.68, 13.98, 11.23, 14.19, 15.87, 20.72, 23.26, 11.91,
                            27.79, 16.02),
    "LCNet + L2": (4.90, 11.12, 9.72, 9.35, 14.70, 14.86, 18.29, 20.11, 25.08, 29.17, 15.73),
    "L2 = Woodham (calibrated)": (4.10, 8.41, 8.89, 8.39, 14.65, 14.92, 18.50, 19.80, 25.60,
                                  30.62, 15.39),
    "PS-FCN (calibrated, 96)": (2.82, 6.16, 7.13, 7.55, 7.25, 7.91, 8.60, 13.33, 7.33, 15.85,
                                8.39),
    "PS-FCN (calibrated, 16)": (3.31, 7.64, 8.14, 7.47, 8.22, 8.76, 9.81, 14.09, 8.78, 17.48,
                                9.37),
    "LCNet light direction": (3.27, 4.08, 5.44, 3.47, 2.87, 4.34, 10.36, 4.50, 4.52, 6.32, 4.92),
    "LCNet intensity error": (.039, .095, .058, .061, .048, .048, .067, .105, .073, .082, .068),
}

STUDENT_COUNTS = (1, 2, 4, 8, 16, 32, 64)
STUDENT = {
    "LCNet (light-direction error)": (17.244, 9.509, 6.085, 5.873, 5.144, 4.749, 4.916),
    "NENet (normal MAE)": (22.693, 15.013, 11.407, 10.094, 9.549, 9.936, 9.506),
}


def markdown() -> str:
  """Both published tables as markdown."""
  lines = ["DiLiGenT main, 96 images, published (degrees; intensity error relative):", "",
           "| method | " + " | ".join(OBJECTS) + " | avg |",
           "|---" * (len(OBJECTS) + 2) + "|"]
  for name, row in DILIGENT.items():
    lines.append(f"| {name} | " + " | ".join(f"{v:g}" for v in row) + " |")
  lines += ["", "Seed report, average over the 10 DiLiGenT objects vs number of input images:", "",
            "| in_img | " + " | ".join(map(str, STUDENT_COUNTS)) + " |",
            "|---" * (len(STUDENT_COUNTS) + 1) + "|"]
  for name, row in STUDENT.items():
    lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
  return "\n".join(lines)
