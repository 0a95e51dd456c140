"""UV position maps (PRNet): landmarks, dense vertices, mesh export, normals, crops and NME.

Public contract (architecture.md, prnet-spec.md §9): `landmarks_from_position_map`, `nme`,
`yaw_bins`, `nme_table`. Pure functions; asset tables are read lazily (never at import).
"""

from bioface_jax.face3d.crop import crop_transform
from bioface_jax.face3d.crop import face_box_transform
from bioface_jax.face3d.crop import transform_points
from bioface_jax.face3d.crop import uncrop_points
from bioface_jax.face3d.crop import warp_image
from bioface_jax.face3d.metrics import BIN_NAMES
from bioface_jax.face3d.metrics import dense_nme
from bioface_jax.face3d.metrics import nme
from bioface_jax.face3d.metrics import nme_components
from bioface_jax.face3d.metrics import nme_table
from bioface_jax.face3d.metrics import yaw_bins
from bioface_jax.face3d.mirror import LANDMARK_MIRROR
from bioface_jax.face3d.mirror import flip_averaged
from bioface_jax.face3d.mirror import mirror_position_map
from bioface_jax.face3d.mirror import position_maps
from bioface_jax.face3d.normals import position_map_normals
from bioface_jax.face3d.normals import rasterise_position_map
from bioface_jax.face3d.normals import smooth_position_map
from bioface_jax.face3d.uv import NUM_LANDMARKS
from bioface_jax.face3d.uv import UV_SIZE
from bioface_jax.face3d.uv import base_assets
from bioface_jax.face3d.uv import face_indices
from bioface_jax.face3d.uv import face_mask
from bioface_jax.face3d.uv import grid_triangles
from bioface_jax.face3d.uv import landmarks_from_position_map
from bioface_jax.face3d.uv import mesh_triangles
from bioface_jax.face3d.uv import resize_uv_map
from bioface_jax.face3d.uv import sample_colors
from bioface_jax.face3d.uv import vertices_from_position_map
from bioface_jax.face3d.uv import weight_mask
from bioface_jax.face3d.uv import write_obj

__all__ = [
    "BIN_NAMES", "LANDMARK_MIRROR", "NUM_LANDMARKS", "UV_SIZE", "base_assets", "crop_transform", "dense_nme",
    "face_box_transform", "face_indices", "face_mask", "flip_averaged", "grid_triangles",
    "landmarks_from_position_map", "mesh_triangles", "mirror_position_map", "nme", "nme_components", "nme_table", "position_map_normals", "position_maps",
    "rasterise_position_map", "resize_uv_map", "sample_colors", "smooth_position_map",
    "transform_points",
    "uncrop_points", "vertices_from_position_map", "warp_image", "weight_mask", "write_obj",
]
