"""Faster CPU convolutions for Chainer: channels-last activations and one float32 GEMM per layer.

Why: on the CPU, Chainer 7.8.1's Convolution2D/Deconvolution2D spend most of a VAE training step outside the
matrix products: im2col_cpu pads and copies, tensordot transposes non-contiguous operands into fresh copies
(`ndarray.reshape` leads the profile), and col2im_cpu adds kernel positions one by one on NCHW planes.
Here activations are NHWC (batch, height, width, channels), so the window view of an input (as_strided, no copy)
becomes the GEMM operand with one contiguous copy, the GEMM output already is the NHWC result, and col2im adds
whole (batch, rows, cols, channels) slabs whose innermost axis is contiguous.

Weights keep Chainer's layouts (Convolution2D: (out, in, kh, kw); Deconvolution2D: (in, out, kh, kw)) so a model
can switch between these functions and the stock layers with the same parameters. No padding, as the World
Models VAE uses none. First-order gradients only (training needs no more): double backprop raises.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided
from chainer import function_node, optimizers


def conv_output_size(size: int, ksize: int, stride: int) -> int:
    return (size - ksize) // stride + 1


def deconv_output_size(size: int, ksize: int, stride: int) -> int:
    return stride * (size - 1) + ksize


# Work is done a few images at a time so that each window matrix stays near the size of a core's L2 cache:
# whole-batch matrices of 40-80 MB are slower to fill (glibc maps and faults them in afresh on every call).
CHUNK_FLOATS = 1 << 19


def batch_chunks(batch: int, floats_per_image: int) -> list[slice]:
    step = max(1, CHUNK_FLOATS // max(1, floats_per_image))
    return [slice(start, min(start + step, batch)) for start in range(0, batch, step)]


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, oh: int, ow: int) -> np.ndarray:
    """(B*oh*ow, kh*kw*C): row (b, i, j) holds the window of NHWC x at (i*stride, j*stride), (ki, kj, c) order."""
    batch, _, _, channels = x.shape
    sb, sh, sw, sc = x.strides
    windows = as_strided(x, (batch, oh, ow, kh, kw, channels), (sb, sh * stride, sw * stride, sh, sw, sc),
                         writeable=False)
    col = np.empty((batch, oh, ow, kh, kw, channels), dtype=x.dtype)
    np.copyto(col, windows)
    return col.reshape(batch * oh * ow, kh * kw * channels)


def col2im(col: np.ndarray, image: np.ndarray, stride: int) -> np.ndarray:
    """The adjoint of im2col: image (B, H, W, C) = the sum of col (B, oh, ow, kh, kw, C) over each window."""
    _, oh, ow, kh, kw, _ = col.shape
    image[...] = 0
    if stride == 2 and kh % 2 == 0 and kw % 2 == 0:
        return _col2im_stride2(col, image)
    for ki in range(kh):
        for kj in range(kw):
            image[:, ki:ki + stride * oh:stride, kj:kj + stride * ow:stride, :] += col[:, :, :, ki, kj, :]
    return image


def _col2im_stride2(col: np.ndarray, image: np.ndarray) -> np.ndarray:
    """col2im for stride 2 and even kernels in kh/2 * kw/2 adds instead of kh * kw.

    Kernel row ki = 2a + p lands on image row 2(i + a) + p: seen as (rows/2, 2, cols/2, 2, C), the image takes
    all four (p, q) parities of one (a, b) in a single add, over runs of 2C contiguous floats instead of C.
    """
    batch, oh, ow, kh, kw, channels = col.shape
    covered = image[:, :2 * (oh - 1) + kh, :2 * (ow - 1) + kw]
    pairs = covered.view()
    pairs.shape = (batch, covered.shape[1] // 2, 2, covered.shape[2] // 2, 2, channels)   # a view, never a copy
    parts = col.reshape(batch, oh, ow, kh // 2, 2, kw // 2, 2, channels)
    for a in range(kh // 2):
        for b in range(kw // 2):
            pairs[:, a:a + oh, :, b:b + ow, :, :] += parts[:, :, :, a, :, b, :, :].transpose(0, 1, 3, 2, 4, 5)
    return image


class _FirstOrderGrad(function_node.FunctionNode):
    """Computes a parent node's input gradients in numpy; cannot itself be differentiated."""

    def __init__(self, parent, indexes):
        self.parent = parent
        self.indexes = tuple(indexes)

    def forward(self, inputs):
        return self.parent.gradients(inputs[0], self.indexes)

    def backward(self, indexes, grad_outputs):
        raise NotImplementedError(f"{type(self.parent).__name__} has no second-order gradient; "
                                  f"use Chainer's own layers for double backpropagation")


def _pick(grads: dict, indexes) -> tuple:
    return tuple(grads[index] for index in indexes)


class _StridedNHWC(function_node.FunctionNode):
    """A strided layer y = f(x, W) + b on NHWC x; subclasses give f (`_forward`) and the `gradients`."""

    def __init__(self, stride: int):
        self.stride = stride

    def forward(self, inputs):
        x, W = inputs[:2]
        self.retain_inputs((0,))
        y = self._forward(x, W)
        if len(inputs) == 3:
            y += inputs[2]
        return y,

    def backward(self, indexes, grad_outputs):
        return _FirstOrderGrad(self, indexes).apply(grad_outputs)


class Convolution2DNHWC(_StridedNHWC):
    """y = conv(x, W) + b with x, y NHWC and W (out, in, kh, kw), no padding."""

    def _forward(self, x, W):
        out_channels, in_channels, kh, kw = W.shape
        batch, height, width, _ = x.shape
        oh, ow = conv_output_size(height, kh, self.stride), conv_output_size(width, kw, self.stride)
        self.wmat = W.transpose(2, 3, 1, 0).reshape(kh * kw * in_channels, out_channels)
        y = np.empty((batch, oh, ow, out_channels), dtype=x.dtype)
        for part in batch_chunks(batch, oh * ow * kh * kw * in_channels):
            col = im2col(x[part], kh, kw, self.stride, oh, ow)
            np.dot(col, self.wmat, out=y[part].reshape(-1, out_channels))
        return y

    def gradients(self, gy, indexes):
        x = self.get_retained_inputs()[0].array
        out_channels, in_channels, kh, kw = self.inputs[1].shape
        _, oh, ow, _ = gy.shape
        gy = np.ascontiguousarray(gy)
        gx = np.empty(x.shape, dtype=x.dtype) if 0 in indexes else None
        gwmat = np.zeros_like(self.wmat) if 1 in indexes else None
        for part in batch_chunks(x.shape[0], oh * ow * kh * kw * in_channels):
            gy_part = gy[part].reshape(-1, out_channels)
            if gwmat is not None:   # windows rebuilt chunk by chunk: cheaper than keeping the whole matrix
                gwmat += np.dot(im2col(x[part], kh, kw, self.stride, oh, ow).T, gy_part)
            if gx is not None:
                gcol = np.dot(gy_part, self.wmat.T).reshape(-1, oh, ow, kh, kw, in_channels)
                col2im(gcol, gx[part], self.stride)
        grads = {0: gx, 2: gy.reshape(-1, out_channels).sum(axis=0)}
        if gwmat is not None:
            grads[1] = np.ascontiguousarray(gwmat.reshape(kh, kw, in_channels, out_channels).transpose(3, 2, 0, 1))
        return _pick(grads, indexes)


class Deconvolution2DNHWC(_StridedNHWC):
    """y = deconv(x, W) + b (the transpose of a strided convolution) with x, y NHWC and W (in, out, kh, kw)."""

    def _forward(self, x, W):
        in_channels, out_channels, kh, kw = W.shape
        batch, height, width, _ = x.shape
        oh, ow = deconv_output_size(height, kh, self.stride), deconv_output_size(width, kw, self.stride)
        x2 = x.reshape(batch * height * width, in_channels)
        # A 1x1 input (the decoder's first layer) is a dense layer: the windows do not overlap, so the weights
        # are used in their own layout and the output only needs its channels moved last.
        self.dense = height == width == 1
        if self.dense:
            self.wmat = W.reshape(in_channels, out_channels * kh * kw)
            y = np.dot(x2, self.wmat).reshape(batch, out_channels, kh, kw).transpose(0, 2, 3, 1).copy()
        else:
            self.wmat = W.transpose(0, 2, 3, 1).reshape(in_channels, kh * kw * out_channels)
            y = np.empty((batch, oh, ow, out_channels), dtype=x.dtype)
            for part in batch_chunks(batch, height * width * kh * kw * out_channels):
                col = np.dot(x[part].reshape(-1, in_channels), self.wmat)
                col2im(col.reshape(-1, height, width, kh, kw, out_channels), y[part], self.stride)
        return y

    def gradients(self, gy, indexes):
        x = self.get_retained_inputs()[0].array
        in_channels, out_channels, kh, kw = self.inputs[1].shape
        batch, height, width, _ = x.shape
        grads = {2: gy.reshape(-1, out_channels).sum(axis=0)}
        if self.dense:
            gcol = gy.transpose(0, 3, 1, 2).reshape(batch, out_channels * kh * kw)
            grads[0] = np.dot(gcol, self.wmat.T).reshape(x.shape)
            grads[1] = np.dot(x.reshape(batch, in_channels).T, gcol).reshape(self.inputs[1].shape)
            return _pick(grads, indexes)
        gx = np.empty(x.shape, dtype=x.dtype) if 0 in indexes else None
        gwmat = np.zeros_like(self.wmat) if 1 in indexes else None
        for part in batch_chunks(batch, height * width * kh * kw * out_channels):
            gcol = im2col(gy[part], kh, kw, self.stride, height, width)
            if gx is not None:
                np.dot(gcol, self.wmat.T, out=gx[part].reshape(-1, in_channels))
            if gwmat is not None:
                gwmat += np.dot(x[part].reshape(-1, in_channels).T, gcol)
        grads[0] = gx
        if gwmat is not None:
            grads[1] = np.ascontiguousarray(gwmat.reshape(in_channels, kh, kw, out_channels).transpose(0, 3, 1, 2))
        return _pick(grads, indexes)


def _args(x, W, b):
    return (x, W) if b is None else (x, W, b)


def convolution_2d(x, W, b=None, stride: int = 1):
    """Convolution of NHWC x (a Variable or numpy array) by Chainer-layout W (out, in, kh, kw); NHWC result."""
    y, = Convolution2DNHWC(stride).apply(_args(x, W, b))
    return y


def deconvolution_2d(x, W, b=None, stride: int = 1):
    """Transposed convolution of NHWC x by Chainer-layout W (in, out, kh, kw); NHWC result."""
    y, = Deconvolution2DNHWC(stride).apply(_args(x, W, b))
    return y


class _AdamRuleInPlace(optimizers.adam.AdamRule):
    """Chainer's Adam step on the CPU without temporaries: the same arithmetic, written into one reused buffer.

    Chainer's update_core_cpu allocates about eight parameter-sized arrays per parameter per step (a 4.3 M
    parameter VAE: some 140 MB of fresh memory each step). Variants (AMSGrad, AdaBound, weight decay, float16)
    take Chainer's own path.
    """

    def update_core_cpu(self, param):
        hp = self.hyperparam
        grad = param.grad
        if (grad is None or hp.amsgrad or hp.adabound or hp.weight_decay_rate != 0
                or param.array.dtype != np.float32):
            return super().update_core_cpu(param)
        m, v = self.state["m"], self.state["v"]
        buffer = getattr(self, "_buffer", None)
        if buffer is None or buffer.shape != m.shape:
            buffer = self._buffer = np.empty_like(m)
        np.subtract(grad, m, out=buffer)            # m += (1 - beta1) (g - m)
        buffer *= 1.0 - hp.beta1
        m += buffer
        np.multiply(grad, grad, out=buffer)         # v += (1 - beta2) (g^2 - v)
        buffer -= v
        buffer *= 1.0 - hp.beta2
        v += buffer
        np.sqrt(v, out=buffer)                      # param -= eta alpha_t m / (sqrt(v) + eps)
        buffer += hp.eps
        np.divide(m, buffer, out=buffer)
        buffer *= -hp.eta * self.alpha_t
        param.array += buffer


class Adam(optimizers.Adam):
    """chainer.optimizers.Adam with the in-place CPU step; the same state (t, m, v) and results."""

    def create_update_rule(self):
        return _AdamRuleInPlace(self.hyperparam)
