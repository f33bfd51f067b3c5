"""models.matmul.project: float32 unchanged; below it, gradients computed in the low precision."""

import jax
import jax.numpy as jnp
import numpy as np

from llm_jax.models import layers
from llm_jax.models.matmul import project


def _loss(dtype):
  return lambda x, kernel: jnp.sum(jnp.sin(project(x, kernel, 2, dtype)))


def _inputs():
  x = jax.random.normal(jax.random.key(0), (3, 5, 4, 6))
  kernel = jax.random.normal(jax.random.key(1), (4, 6, 7)) * 0.3
  return x, kernel


def _dot_operand_dtypes(fn, *args):
  jaxpr = jax.make_jaxpr(fn)(*args)
  dots = []

  def visit(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == 'dot_general':
        dots.append(tuple(str(v.aval.dtype) for v in eqn.invars))
      for sub in jax.core.jaxprs_in_params(eqn.params):
        visit(sub)

  visit(jaxpr.jaxpr)
  return dots


def test_float32_is_a_plain_dot_general():
  x, kernel = _inputs()
  want = jnp.einsum('btij,ijo->bto', x, kernel, precision='highest')
  np.testing.assert_allclose(project(x, kernel, 2, jnp.float32), want, rtol=1e-5, atol=1e-5)
  assert _dot_operand_dtypes(jax.grad(_loss(jnp.float32), argnums=(0, 1)), x, kernel) == [
      ('float32', 'float32')] * 3


def test_bf16_backward_dots_are_bf16_and_the_kernel_gradient_float32():
  """JAX's own gradient multiplied the float32 cotangent with the bf16 operands (a mixed dot
  XLA:CPU runs in float32); here all three dots take bf16 operands, and the gradients match
  float32's to bf16's precision."""
  x, kernel = _inputs()
  grad = jax.grad(_loss(jnp.bfloat16), argnums=(0, 1))
  assert _dot_operand_dtypes(grad, x, kernel) == [('bfloat16', 'bfloat16')] * 3
  dx, dkernel = grad(x, kernel)
  assert dx.dtype == jnp.float32 and dkernel.dtype == jnp.float32
  want_dx, want_dkernel = jax.grad(_loss(jnp.float32), argnums=(0, 1))(x, kernel)
  for got, want in ((dx, want_dx), (dkernel, want_dkernel)):
    error = float(jnp.linalg.norm(got - want) / jnp.linalg.norm(want))
    assert error < 2e-2, error
  y = project(x, kernel, 2, jnp.bfloat16)
  assert y.dtype == jnp.float32


def test_bf16_xla_attention_matches_jax_nn_and_keeps_its_gradient_in_bf16():
  """Below float32 layers.attend writes XLA attention out with matmul.einsum: the same values
  and gradients as jax.nn.dot_product_attention to bf16's precision, with bf16 dots only."""
  q, k, v = (jax.random.normal(jax.random.key(i), (2, 6, 4, 8)).astype(jnp.bfloat16)
             for i in range(3))
  mask = jnp.tril(jnp.ones((6, 6), bool))[None, None]

  def ours(q, k, v):
    return jnp.sum(jnp.sin(layers.attend(q, k, v, None, mask, 0.35).astype(jnp.float32)))

  def reference(q, k, v):
    out = jax.nn.dot_product_attention(q.astype(jnp.float32), k.astype(jnp.float32),
                                       v.astype(jnp.float32), mask=mask, scale=0.35)
    return jnp.sum(jnp.sin(out))

  assert abs(float(ours(q, k, v)) - float(reference(q, k, v))) < 0.05
  got = jax.grad(ours, argnums=(0, 1, 2))(q, k, v)
  want = jax.grad(reference, argnums=(0, 1, 2))(q, k, v)
  for g, w in zip(got, want):
    assert g.dtype == jnp.bfloat16
    error = float(jnp.linalg.norm(g.astype(jnp.float32) - w) / jnp.linalg.norm(w))
    assert error < 3e-2, error
  dots = _dot_operand_dtypes(jax.grad(ours, argnums=(0, 1, 2)), q, k, v)
  assert len(dots) == 6 and set(dots) == {('bfloat16', 'bfloat16')}, dots
