"""PRNet data: synthetic (image, UV position map) pairs with exact truth; 300W-LP / AFLW2000-3D."""
