"""The one matmul every projection goes through: float32 accumulation, and low-precision
gradients that stay low-precision.

Below float32, JAX's own gradient of ``dot_general(x16, w16, preferred_element_type=f32)``
multiplies the float32 cotangent with the bf16 operands: a mixed dot that XLA:CPU runs in
float32, so the backward pass, two thirds of a step's matmuls, gained nothing from bf16 (the
6L/384 MLP's forward and backward: 172 ms in bf16 against 188 ms in float32; 84 ms with the
gradient below; DESIGN pitfall 6). Asking for ``DotAlgorithmPreset.BF16_BF16_F32`` instead,
as ``jax.nn.dot_product_attention`` does, carries the algorithm into the backward dots but
XLA:CPU still runs them slowly (145 ms).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp


def project(x: jax.Array, kernel: jax.Array, n_in: int, dtype: Any) -> jax.Array:
  """``x``'s last ``n_in`` dims contracted with the float32 ``kernel``'s first ``n_in``, in
  ``dtype`` with float32 accumulation; the float32 result. Below float32 the gradients are
  computed in ``dtype`` too, the kernel's returned as accumulated, in float32.
  """
  x = x.astype(dtype)
  if jnp.dtype(dtype) == jnp.float32:
    return _dot(x, kernel, n_in)
  return _low_precision_dot(x, kernel, n_in)


def _dot(x: jax.Array, kernel: jax.Array, n_in: int) -> jax.Array:
  contract = (tuple(range(x.ndim - n_in, x.ndim)), tuple(range(n_in)))
  return jax.lax.dot_general(x, kernel.astype(x.dtype), (contract, ((), ())),
                             preferred_element_type=jnp.float32)


_low_precision_dot = jax.custom_vjp(_dot, nondiff_argnums=(2,))


def _low_precision_dot_forward(x, kernel, n_in):
  return _dot(x, kernel, n_in), (x, kernel.astype(x.dtype))


def _low_precision_dot_backward(n_in, residuals, cotangent):
  x, kernel = residuals
  cotangent = cotangent.astype(x.dtype)
  batch = x.ndim - n_in
  dx = jax.lax.dot_general(
      cotangent, kernel, ((tuple(range(batch, cotangent.ndim)), tuple(range(n_in, kernel.ndim))),
                          ((), ())), preferred_element_type=jnp.float32)
  dkernel = jax.lax.dot_general(x, cotangent, ((tuple(range(batch)), tuple(range(batch))),
                                               ((), ())), preferred_element_type=jnp.float32)
  # Behind a barrier XLA cannot fold a transpose of the kernel (Embed.attend's) into this
  # dot by swapping its operands, a layout only Eigen takes, which has no bf16 x bf16 = f32.
  return dx.astype(x.dtype), jax.lax.optimization_barrier(dkernel)


_low_precision_dot.defvjp(_low_precision_dot_forward, _low_precision_dot_backward)


def einsum(spec: str, a: jax.Array, b: jax.Array, dtype: Any) -> jax.Array:
  """``jnp.einsum(spec, a, b)`` in ``dtype`` with float32 accumulation; the float32 result.
  Below float32 its gradients are computed in ``dtype`` too, as ``project``'s are. Every index
  of each operand must appear in the other operand or in the output (a batched matmul)."""
  if jnp.dtype(dtype) == jnp.float32:
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)
  return _low_precision_einsum(spec, a.astype(dtype), b.astype(dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _low_precision_einsum(spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


def _low_precision_einsum_forward(spec, a, b):
  return _low_precision_einsum(spec, a, b), (a, b)


def _low_precision_einsum_backward(spec, residuals, cotangent):
  a, b = residuals
  inputs, out = spec.split('->')
  in_a, in_b = inputs.split(',')
  cotangent = cotangent.astype(a.dtype)
  da = jnp.einsum(f'{out},{in_b}->{in_a}', cotangent, b, preferred_element_type=jnp.float32)
  db = jnp.einsum(f'{in_a},{out}->{in_b}', a, cotangent, preferred_element_type=jnp.float32)
  return da.astype(a.dtype), db.astype(b.dtype)


_low_precision_einsum.defvjp(_low_precision_einsum_forward, _low_precision_einsum_backward)
