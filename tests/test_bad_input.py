"""Every bad input of the FD transforms gets a clear error naming the argument."""

import jax
import jax.numpy as jnp
import pytest

import fdjax

f = lambda x: jnp.sum(x**2)
x = jnp.array([1.0, 2.0])


@pytest.mark.parametrize("method", ["centre", "", 3, None])
def test_unknown_method(method):
    with pytest.raises(ValueError, match=r"fdjax.grad\(method=...\) must be one of .*central"):
        fdjax.grad(f, method=method)


@pytest.mark.parametrize("step", [0.0, -1e-6, float("nan"), float("inf"), "big"])
def test_bad_step(step):
    with pytest.raises(ValueError, match=r"fdjax.grad\(step=...\) must be"):
        fdjax.grad(f, step=step)


@pytest.mark.parametrize("step", [jnp.array([1e-3, -1e-3]), jnp.array([jnp.nan, 1e-3])])
def test_bad_step_array(step):
    with pytest.raises(ValueError, match=r"fdjax.grad\(step=...\) must be positive and finite"):
        fdjax.grad(f, step=step)(x)


def test_step_tree_mismatch():
    with pytest.raises(ValueError, match=r"fdjax.grad\(step=...\) must be a float or a pytree"):
        fdjax.grad(lambda p: p["a"] ** 2, step={"b": 1e-3})({"a": jnp.array(1.0)})


def test_non_scalar_output_for_grad():
    with pytest.raises(TypeError, match=r"fdjax.grad requires a scalar-output function .*\(2,\)"):
        fdjax.grad(lambda v: v**2)(x)


def test_integer_output():
    with pytest.raises(TypeError, match="real floating-point outputs"):
        fdjax.jacobian(lambda v: jnp.round(v).astype(jnp.int32))(x)


def test_empty_pytree():
    with pytest.raises(ValueError, match="empty pytree"):
        fdjax.grad(lambda p: 0.0)({})


@pytest.mark.parametrize("argnums", [1, -2, (0, 3)])
def test_argnums_out_of_range(argnums):
    with pytest.raises(ValueError, match=r"fdjax.grad\(argnums=...\) refers to positional argument"):
        fdjax.grad(f, argnums=argnums)(x)


@pytest.mark.parametrize("argnums", ["0", (), (0, 0), 1.0])
def test_argnums_bad_type(argnums):
    with pytest.raises((TypeError, ValueError), match=r"argnums"):
        fdjax.grad(lambda a, b: jnp.sum(a), argnums=argnums)(x, x)


def test_no_float_leaves():
    with pytest.raises(TypeError, match="no floating-point leaves"):
        fdjax.grad(lambda p: jnp.sum(p["i"]) * 1.0)({"i": jnp.array([1, 2])})


def test_complex_leaf():
    with pytest.raises(TypeError, match="is complex"):
        fdjax.grad(lambda v: jnp.sum(jnp.abs(v)))(jnp.array([1.0 + 1j]))


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf, -jnp.inf])
def test_non_finite_x(bad):
    with pytest.raises(ValueError, match=r"non-finite values; first at \['b'\]\[1\]"):
        fdjax.grad(lambda p: jnp.sum(p["a"]) + jnp.sum(p["b"]))({"a": x, "b": jnp.array([0.0, bad])})


def test_non_finite_at_perturbed_point_names_parameter_and_offset():
    g = lambda p: jnp.sum(jnp.log(p["w"]))
    with pytest.raises(fdjax.NonFiniteError, match=r"parameter \['w'\]\[1\] with offset -1·h"):
        fdjax.grad(g)({"w": jnp.array([1.0, 1e-9])})
    # The one-sided forward difference stays in the domain and works.
    out = fdjax.grad(g, method="forward", step=1e-6)({"w": jnp.array([1.0, 1e-3])})
    assert abs(float(out["w"][1]) - 1e3) < 1.0


def test_non_finite_at_x():
    with pytest.raises(fdjax.NonFiniteError, match="unperturbed point"):
        fdjax.grad(lambda v: jnp.sum(jnp.log(v - 1.0)))(jnp.array([1.0]))


def test_non_finite_inside_jit_propagates_as_nan():
    out = jax.jit(fdjax.grad(lambda v: jnp.sum(jnp.log(v))))(jnp.array([1.0, 1e-9]))
    assert bool(jnp.isnan(out[1])) and bool(jnp.isfinite(out[0]))


@pytest.mark.parametrize("g", [lambda v: jnp.sum(jnp.abs(v)), lambda v: jnp.sum(jnp.real(v) ** 2)])
def test_complex_step_unsafe_function(g):
    with pytest.raises(ValueError, match="not complex-step safe"):
        fdjax.grad(g, method="complex")(x)
    # under jit it cannot raise: the estimate becomes NaN, never a plausible number
    assert bool(jnp.all(jnp.isnan(jax.jit(fdjax.grad(g, method="complex"))(x))))


@pytest.mark.parametrize(
    "name,value", [("chunk_size", 0), ("chunk_size", 2.5), ("memory_budget", -1), ("chunk_size", True)]
)
def test_bad_engine_options(name, value):
    with pytest.raises(ValueError, match=rf"fdjax.grad\({name}=...\) must be a positive int"):
        fdjax.grad(f, **{name: value})


def test_not_callable():
    with pytest.raises(TypeError, match=r"fdjax.grad\(fun=...\) must be callable"):
        fdjax.grad(3.0)


def test_second_derivative_stencil_rejected():
    with pytest.raises(ValueError, match="first-derivative stencil"):
        fdjax.grad(f, method=fdjax.Stencil.from_offsets([-1, 0, 1], derivative=2))


def test_has_aux_requires_pair():
    with pytest.raises(TypeError, match=r"has_aux=True\) requires the function to return a pair"):
        fdjax.grad(f, has_aux=True)(x)


def test_jvp_bad_tangents():
    with pytest.raises(
        ValueError, match=r"fdjax.jvp\(tangents=...\) leaf shape \(3,\) does not match primal shape \(2,\)"
    ):
        fdjax.jvp(f, (x,), (jnp.ones(3),))
    with pytest.raises(ValueError, match="primals has 1 arguments but tangents has 2"):
        fdjax.jvp(f, (x,), (x, x))
    with pytest.raises(TypeError, match="must be tuples or lists"):
        fdjax.jvp(f, x, x)
    with pytest.raises(
        ValueError, match=r"fdjax.batched_jvp\(tangents=...\) leaves need a leading batch axis"
    ):
        fdjax.batched_jvp(
            lambda a, b: a * b, (jnp.array(1.0), jnp.array(2.0)), (jnp.array(1.0), jnp.array(1.0))
        )
    with pytest.raises(ValueError, match="disagree on the batch size"):
        fdjax.batched_jvp(lambda a, b: a * b, (jnp.array(1.0), jnp.array(2.0)), (jnp.ones(2), jnp.ones(3)))
