"""MMRPhys: multitask (BVP + respiration) remote physiological sensing from RGB and thermal face video."""
