"""Face selection (one / many / reference) and tracking faces across video frames."""

from __future__ import annotations

import itertools

import av
import cv2
import numpy as np
import pytest

from slimswap.errors import UserError
from slimswap.face.analyser import Face, embedding_distance, kps_from_landmarks
from slimswap.face.select import (
    DetectionSchedule,
    FaceTracker,
    box_from_landmarks,
    iou,
    select_faces,
)


def _box_face(x0: float, y0: float, side: float = 100.0, score: float = 1.0) -> Face:
    """A face known only by its box: enough for selection by size and for tracking."""
    return Face(
        bbox=np.array([x0, y0, x0 + side, y0 + side], np.float32),
        landmarks=np.zeros((68, 2), np.float32),
        kps=np.zeros((5, 2), np.float32),
        score=score,
    )


# --- iou and one / many -------------------------------------------------------------------


def test_iou_of_known_boxes():
    a = np.array([0, 0, 10, 10])
    assert iou(a, a) == 1.0
    assert iou(a, [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert iou(a, [20, 20, 30, 30]) == 0.0
    assert iou(a, [3, 3, 3, 8]) == 0.0  # empty box


def test_one_picks_the_largest_box_and_many_keeps_all():
    faces = [
        _box_face(0, 0, 80, score=3.0),
        _box_face(200, 0, 120, score=0.1),
        _box_face(400, 0, 60),
    ]
    assert select_faces(faces, "one") == [faces[1]]
    assert select_faces(faces, "many") == faces
    assert select_faces([], "one") == [] and select_faces([], "reference", np.zeros(128)) == []


def test_bad_mode_and_missing_reference_are_user_errors():
    faces = [_box_face(0, 0)]
    with pytest.raises(UserError, match="mode"):
        select_faces(faces, "largest")
    with pytest.raises(UserError, match="reference"):
        select_faces(faces, "reference")


@pytest.fixture(scope="module")
def couple(shared_data, analyser, load_rgb):
    """couple.jpg (two people, one of them deepface id01) and its faces."""
    frame = load_rgb(shared_data / "deepface_testset/_unlabeled_multi_face/couple.jpg")
    return frame, analyser.detect(frame)


@pytest.fixture(scope="module")
def id01_embedding(shared_data, analyser, load_rgb):
    frame = load_rgb(shared_data / "deepface_testset/id01/img1.jpg")
    return analyser.embed(frame, analyser.detect(frame)[0]).embedding


@pytest.mark.shared
def test_one_and_many_on_a_group_photo(shared_data, analyser, load_rgb):
    frame = load_rgb(shared_data / "insightface_wheel_samples/t1.jpg", max_side=1280)
    faces = analyser.detect(frame)
    assert len(faces) == 6
    assert len(select_faces(faces, "many")) == 6
    (one,) = select_faces(faces, "one")
    assert one.area == max(f.area for f in faces)


@pytest.mark.shared
def test_reference_picks_the_right_person(couple, id01_embedding, analyser):
    frame, faces = couple
    assert len(faces) == 2
    calls = []

    def embed(face):
        calls.append(face)
        return analyser.embed(frame, face)

    (picked,) = select_faces(faces, "reference", id01_embedding, embed=embed)
    assert len(calls) == 2  # each face embedded once, lazily
    (other,) = [analyser.embed(frame, f) for f in faces if not np.array_equal(f.bbox, picked.bbox)]
    assert embedding_distance(picked.embedding, id01_embedding) < 0.6
    assert embedding_distance(other.embedding, id01_embedding) > 0.6
    # faces that already carry embeddings need no callable
    embedded = [analyser.embed(frame, f) for f in faces]
    (again,) = select_faces(embedded, "reference", id01_embedding)
    assert np.array_equal(again.bbox, picked.bbox)


@pytest.mark.shared
def test_reference_of_someone_absent_selects_nobody(couple, shared_data, analyser, load_rgb):
    frame, faces = couple
    other = load_rgb(shared_data / "deepface_testset/id12/img35.jpg")
    reference = analyser.embed(other, analyser.detect(other)[0]).embedding
    embedded = [analyser.embed(frame, f) for f in faces]
    assert select_faces(embedded, "reference", reference) == []
    # loosening the threshold past every distance selects the closest face again
    assert len(select_faces(embedded, "reference", reference, max_distance=2.0)) == 1


@pytest.mark.shared
def test_reference_in_a_crowded_selfie_is_not_the_largest_face(
    shared_data, analyser, load_rgb, id01_embedding
):
    frame = load_rgb(shared_data / "deepface_testset/_unlabeled_multi_face/selfie-many-people.jpg")
    faces = analyser.detect(frame)
    assert len(faces) >= 4
    (picked,) = select_faces(
        faces, "reference", id01_embedding, embed=lambda f: analyser.embed(frame, f)
    )
    (largest,) = select_faces(faces, "one")
    assert not np.array_equal(picked.bbox, largest.bbox)
    # the picked face is the only one within the threshold
    others = [analyser.embed(frame, f) for f in faces if not np.array_equal(f.bbox, picked.bbox)]
    assert all(embedding_distance(f.embedding, id01_embedding) > 0.6 for f in others)


def test_reference_without_embeddings_or_embed_callable_is_a_bug():
    with pytest.raises(ValueError, match="embed"):
        select_faces([_box_face(0, 0)], "reference", np.zeros(128, np.float32))


# --- tracking -------------------------------------------------------------------------------


@pytest.mark.parametrize("speed, dy", [(10, 20), (15, 10), (30, 20)])
def test_two_faces_crossing_keep_their_ids(speed, dy):
    # A moves right, B moves left, dy px lower: mid-way their boxes overlap almost fully
    # (identical boxes would make either assignment equally right). Matching on last
    # positions alone swaps the ids in the last two cases; the velocity prediction does not.
    tracker = FaceTracker()
    ids_a, ids_b = [], []
    for t in range(400 // speed + 1):
        a, b = _box_face(100 + speed * t, 50), _box_face(500 - speed * t, 50 + dy)
        order = [b, a] if t % 3 else [a, b]  # detector order changes from frame to frame
        tracks = tracker.update(order)
        by_face = {id(f): tr.id for f, tr in zip(order, tracks)}
        ids_a.append(by_face[id(a)])
        ids_b.append(by_face[id(b)])
    assert len(set(ids_a)) == 1 and len(set(ids_b)) == 1
    assert ids_a[0] != ids_b[0]


def test_tracks_survive_short_gaps_and_end_after_long_ones():
    tracker = FaceTracker(max_missed=3)
    (first,) = tracker.update([_box_face(100, 100)])
    for _ in range(3):
        tracker.update([])
    (same,) = tracker.update([_box_face(102, 100)])
    assert same.id == first.id and same.hits == 2
    for _ in range(4):
        tracker.update([])
    (new,) = tracker.update([_box_face(102, 100)])
    assert new.id != first.id


def test_track_keeps_the_embedding_between_frames():
    tracker = FaceTracker()
    face = _box_face(0, 0).with_embedding(np.ones(128))
    tracker.update([face])
    (track,) = tracker.update([_box_face(3, 0)])  # next frame: no embedding computed
    assert track.embedding is not None and track.embedding.sum() == 128


def test_detection_schedule_detects_every_k_frames_and_when_lost():
    schedule, tracker = DetectionSchedule(every=4), FaceTracker()
    assert schedule.should_detect(0, tracker)
    assert schedule.should_detect(1, tracker)  # nothing tracked yet
    tracker.update([_box_face(0, 0)])
    assert [schedule.should_detect(i, tracker) for i in range(1, 9)] == [
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]
    tracker.update([])
    assert schedule.should_detect(5, tracker)  # the face was lost: look again now
    with pytest.raises(UserError):
        DetectionSchedule(every=0)


def _video_frames(path, count):
    with av.open(str(path)) as container:
        frames = container.decode(video=0)
        return [f.to_ndarray(format="rgb24") for f in itertools.islice(frames, count)]


@pytest.mark.shared
def test_ids_stay_stable_on_real_video(shared_data, analyser):
    # two real talking heads side by side, as one two-person video
    videos = shared_data / "videos"
    left = _video_frames(videos / "liveportrait_driving_d3.mp4", 24)
    right = _video_frames(videos / "liveportrait_driving_d10.mp4", 24)
    tracker, schedule = FaceTracker(), DetectionSchedule(every=4)
    ids: dict[str, set[int]] = {"left": set(), "right": set()}
    relandmarked_ious = []
    for index, (a, b) in enumerate(zip(left, right)):
        frame = np.hstack([cv2.resize(a, (256, 256)), cv2.resize(b, (256, 256))])
        detected = analyser.detect(frame)
        if schedule.should_detect(index, tracker):
            faces = detected
        else:
            # landmarks only, inside each track's box; the box is re-derived from them
            faces = []
            for _, box in schedule.boxes_to_follow(tracker):
                landmarks = analyser.landmarks(frame, box)
                faces.append(
                    Face(
                        box_from_landmarks(landmarks), landmarks, kps_from_landmarks(landmarks), 0.0
                    )
                )
            for face in faces:  # the followed boxes stay on the detector's boxes
                relandmarked_ious.append(max(iou(face.bbox, d.bbox) for d in detected))
        tracks = tracker.update(faces)
        assert len(tracks) == 2
        for face, track in zip(faces, tracks):
            side = "left" if (face.bbox[0] + face.bbox[2]) / 2 < 256 else "right"
            ids[side].add(track.id)
    assert len(ids["left"]) == 1 and len(ids["right"]) == 1
    assert ids["left"] != ids["right"]
    assert len(relandmarked_ious) == 2 * 18 and min(relandmarked_ious) > 0.5
