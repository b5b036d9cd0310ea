from thinkctl.probes.forced_exit import answer_ids, cue_positions, forced_exits

END, CUE, INDUCE = 9, 5, 8


def test_cues_count_only_inside_thinking():
    assert cue_positions([1, CUE, 2, CUE, END, CUE], {CUE}, END) == [1, 3]


def test_one_exit_per_cue_cut_just_before_it():
    exits = forced_exits([[100], [200]], [[1, CUE, 2, CUE, END], [3, 4]], {CUE}, [END, INDUCE])
    assert [(e.trace, e.position, e.prompt_ids) for e in exits] == [
        (0, 1, (100, 1, END, INDUCE)),
        (0, 3, (100, 1, CUE, 2, END, INDUCE)),
    ]


def test_the_answer_is_checked_with_the_inducer_before_it():
    # close = end of thinking, then the inducer's tokens; the end itself is not answer text.
    assert answer_ids([END, INDUCE, 30], [40, 41]) == [INDUCE, 30, 40, 41]
