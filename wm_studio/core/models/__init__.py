"""V (ConvVAE), M (MDN-RNN) and C (controller): Chainer links and numpy controllers."""
