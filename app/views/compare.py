"""Compare: runs side by side: where each one's generated models sit on its ruler, B − A with intervals
for every headline number, the verdicts, the accuracy distributions and the settings that differ.
Runs on another dataset, target, classifier or zoo size are shown, never judged against each other."""
import streamlit as st

from app import data, figures, tables, ui
from pdiff.core.errors import RunError
from pdiff.core.rundir import RunDir, safe_run_path
from pdiff.judge import verdict as answers
from pdiff.judge.comparison import compare_rows, mismatches, run_facts

MAX_RUNS = 4

st.title("Compare runs")
ui.intro("Pick a run A and up to three others to see what a change of settings did. The ruler places each run's "
         "generated models between copies (0) and fresh SGD (1) of that run. The table gives every headline number "
         "of one group in each run, B − A and its 95% interval: a change is real where the interval does not include "
         "0, and only between runs that measure the same thing (same dataset, classifier, generated parameters, zoo "
         "and test sizes). Below: the verdicts, the accuracy distributions and every setting that differs.")

names = data.list_run_names()
if not names:
    ui.no_runs()
    st.stop()
if len(names) < 2:
    st.info("Comparing needs two runs; launch another one on the New run page.")
    st.stop()
current = st.session_state.get(ui.RUN_KEY)
c1, c2, c3 = st.columns([2, 3, 1])
name_a = c1.selectbox("Run A", names, index=names.index(current) if current in names else 0, key="cmp_a")
others = [n for n in names if n != name_a]
finished = [n for n in others if data.run_summary(RunDir(data.root() / n)) == "done"]
if any(n not in others for n in st.session_state.get("cmp_b", [])):
    st.session_state["cmp_b"] = [n for n in st.session_state["cmp_b"] if n in others]
chosen = c2.multiselect("Compared with (B)", others, default=(finished or others)[:1], key="cmp_b",
                        max_selections=MAX_RUNS - 1, help="By default the newest finished run other than A.")

runs: dict[str, RunDir] = {}
for name in [name_a, *chosen]:
    try:
        runs[name] = RunDir(safe_run_path(name, data.root()))
    except RunError as exc:
        st.error(str(exc))

accuracies, cards, complete, facts = {}, {}, {}, {}
for name, run in runs.items():
    with ui.guard(run):
        if ui.need(run, "evaluate", f"{name}'s numbers"):
            accuracies[name] = data.accuracy(run)
            table = data.table(run)
            cards[name], complete[name] = table.rows, table.complete
            config = data.config(run)
            facts[name] = run_facts(config.data.name, config.classifier.arch, config.collect.target, table.rows)

others_ready = [n for n in chosen if n in cards]
problems = {n: mismatches(facts[name_a], facts[n]) for n in others_ready if name_a in facts}
for n, why in problems.items():
    if why:
        st.warning(f"**{name_a}** and **{n}** do not measure the same thing ({'; '.join(why)}): their numbers are "
                   f"shown side by side, but no difference between them is called a real change.",
                   icon=":material/block:")

if name_a in cards and others_ready:
    shown = [name_a, *others_ready]
    # one row per measure and run, so that runs at the same place do not hide each other
    rows = {n: {f"{m} · {n}": (cards[n].get("generated", {}).get("ruler") or {}).get(m) or {}
                for m in ("behaviour", "parameters")} for n in shown}
    measures = [row for n in shown for row, place in rows[n].items() if place.get("position") is not None]
    if measures:
        st.subheader("The generated models on each run's ruler")
        st.plotly_chart(figures.ruler_figure(rows, sorted(measures, key=lambda r: (r.split(" · ")[0], shown.index(
            r.split(" · ")[1]))), (answers.COPIES_BELOW, answers.FRESH_FROM, answers.BEYOND_ABOVE), shown,
            leader=""), key="cmp_ruler")
        st.caption("One row per measure and run, with its 95% interval; each run is measured against its own copies "
                   "and its own fresh SGD run. A run without a row on a measure cannot tell copies from fresh "
                   "training there.")
    common = [g for g in cards[name_a] if all(g in cards[n] for n in others_ready)]
    group = c3.selectbox("Group", common, index=common.index("generated") if "generated" in common else 0,
                         key="cmp_group")
    differences = {n: compare_rows(cards[name_a][group], cards[n][group]) for n in others_ready}
    st.subheader(f"{group}: B − A")
    frame = tables.difference_frame(differences, name_a, {n: not problems.get(n) for n in others_ready})
    st.dataframe(frame, hide_index=True, width="stretch", key="cmp_diff_table", height=38 + 35 * len(frame))
    st.caption("95% interval of B − A from the two runs' own bootstrap intervals (MOVER, Zou & Donner 2008: the "
               "runs are independent samples). Counts and the ensemble gain have no interval. Fidelity numbers "
               "appear once the analysis measures them."
               + ("" if all(complete.values()) else " A run's analysis is not current: only accuracy is compared."))
    cols = st.columns(len(shown))
    for col, name in zip(cols, shown):
        result = data.verdict(runs[name])
        with col.container(border=True):
            st.markdown(f"**{name}**" + (f": {result.answer}" if result is not None else ""))
            st.markdown(result.headline if result is not None else "No verdict yet (the analysis is not current).")
            for caveat in result.caveats if result is not None else ():
                st.caption(f":material/warning: {caveat}")

if name_a in accuracies and len(accuracies) > 1:
    common = [g for g in accuracies[name_a] if all(g in acc for acc in accuracies.values())]
    groups = st.multiselect("Groups", common, default=[g for g in common if g in ("zoo", "generated")] or common[:2],
                            key="cmp_groups")
    st.plotly_chart(figures.compare_accuracy({n: {g: acc[g] for g in groups} for n, acc in accuracies.items()}),
                    key="cmp_chart")

if name_a in runs and len(runs) > 1:
    st.subheader("Settings that differ from A")
    for name in [n for n in runs if n != name_a]:
        with ui.guard():
            diff = tables.config_diff(data.config_dict(runs[name_a]), data.config_dict(runs[name]))
            if diff.empty:
                st.caption(f"{name}: the same config as {name_a}.")
            else:
                st.dataframe(diff.rename(columns={"A": name_a, "B": name}), hide_index=True, width="stretch",
                             key=f"cmp_diff_{name}")
