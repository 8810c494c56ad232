"""JADE (Cardoso & Souloumiac 1993): independent components by joint approximate
diagonalisation of fourth-order cumulant matrices, in the form the rPPG-Toolbox's ICA
uses (docs/baselines.md, ICA).
"""

from __future__ import annotations

import numpy as np

#: maps a pair's 3 x 3 cumulant slice onto the rotation's angle space
_ANGLES = np.array([[1, 0, 0], [0, 1, 1], [0, -1j, 1j]])
#: Jacobi sweeps stop here even if the last one still rotated (it converges in a few)
MAX_SWEEPS = 100


def _cumulant_matrix(y: np.ndarray) -> np.ndarray:
    """The m^2 x m^2 fourth-order cumulant matrix of whitened data y (m, T).

    Entry (m l + k, m j + i) is mean(y_l conj(y_k) conj(y_j) y_i) - R[i,j] R[l,k]
    - R[i,k] R[l,j] - C[i,l] conj(C[j,k]), with R = y y^H / T and C = y y^T / T.
    """
    m, t = y.shape
    r = y @ y.conj().T / t
    c = y @ y.T / t
    left = (y[:, None, :] * y.conj()[None, :, :]).reshape(m * m, t)  # y_l conj(y_k)
    right = (y.conj()[:, None, :] * y[None, :, :]).reshape(m * m, t)  # conj(y_j) y_i
    moments = (left @ right.T / t).reshape(m, m, m, m)  # [l, k, j, i]
    cumulant = (
        moments
        - np.einsum("ij,lk->lkji", r, r)
        - np.einsum("ik,lj->lkji", r, r)
        - np.einsum("il,jk->lkji", c, c.conj())
    )
    return cumulant.reshape(m * m, m * m)


def _eigen_matrices(cumulant: np.ndarray, m: int) -> np.ndarray:
    """The m eigen-matrices of largest |eigenvalue|, each scaled by it, side by side (m, m^2)."""
    values, vectors = np.linalg.eig(cumulant)
    order = np.argsort(np.abs(values))
    largest = order[::-1][:m]
    blocks = [vectors[:, k].reshape(m, m) * np.abs(values[k]) for k in largest]
    return np.hstack(blocks).astype(complex)


def _joint_diagonaliser(matrices: np.ndarray, n_samples: int) -> np.ndarray:
    """Unitary V that jointly diagonalises the m x m blocks of `matrices` (Jacobi sweeps)."""
    m = matrices.shape[0]
    v = np.eye(m, dtype=complex)
    threshold = 1.0 / np.sqrt(n_samples) / 100.0
    for _ in range(MAX_SWEEPS):
        rotated = False
        for p in range(m - 1):
            for q in range(p + 1, m):
                ip, iq = np.arange(p, m * m, m), np.arange(q, m * m, m)
                g = np.vstack([matrices[p, ip] - matrices[q, iq], matrices[p, iq], matrices[q, ip]])
                gram = np.real(_ANGLES @ (g @ g.conj().T) @ _ANGLES.conj().T)
                values, vectors = np.linalg.eig(gram)
                angles = vectors[:, np.argmax(values.real)].real
                if angles[0] < 0:
                    angles = -angles
                cos = np.sqrt(0.5 + angles[0] / 2)
                sin = 0.5 * (angles[1] - 1j * angles[2]) / cos
                if abs(sin) <= threshold:
                    continue
                rotated = True
                pair = [p, q]
                rotation = np.array([[cos, -np.conj(sin)], [sin, cos]])
                v[:, pair] = v[:, pair] @ rotation
                matrices[pair, :] = rotation.conj().T @ matrices[pair, :]
                old_p, old_q = matrices[:, ip].copy(), matrices[:, iq].copy()
                matrices[:, ip] = cos * old_p + sin * old_q
                matrices[:, iq] = -np.conj(sin) * old_p + cos * old_q
        if not rotated:
            break
    return v


def jade_sources(whitened: np.ndarray) -> np.ndarray:
    """Independent sources V^H y (m, T, complex) of whitened data y (m, T)."""
    y = whitened.astype(complex)
    m, t = y.shape
    matrices = _eigen_matrices(_cumulant_matrix(y), m)
    return _joint_diagonaliser(matrices, t).conj().T @ y
