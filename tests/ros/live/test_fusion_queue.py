"""How far the node's fusion thread may fall behind: the queue depth fits the frames' memory."""

from __future__ import annotations

from cityseg.ros.live.fusion import QUEUE_BYTES, QUEUE_DEPTH, queue_depth


def test_depth_fits_what_a_queued_frame_holds():
    assert queue_depth((128, 256), 19, with_scores=True) == 64 == QUEUE_DEPTH[1]  # the most
    assert queue_depth((256, 512), 19, with_scores=True) == 53  # 10 MB a frame
    assert queue_depth((512, 1024), 19, with_scores=True) == 13  # 40 MB a frame: about 520 MB queued
    assert queue_depth((1024, 2048), 19, with_scores=True) == 8 == QUEUE_DEPTH[0]  # never fewer
    assert queue_depth((1024, 2048), 19, with_scores=False) == 64  # class ids alone (argmax head, grid)
    for size in ((512, 1024), (768, 1536)):
        depth = queue_depth(size, 19, with_scores=True)
        assert depth == QUEUE_DEPTH[0] or depth * size[0] * size[1] * (1 + 4 * 19) <= QUEUE_BYTES
