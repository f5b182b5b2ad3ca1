"""Compare: two runs side by side: B - A with intervals for every headline number, both verdicts,
the accuracy distributions and the settings that differ."""
import streamlit as st

from app import data, figures, tables, ui
from pdiff.core.errors import RunError
from pdiff.core.rundir import RunDir, safe_run_path
from pdiff.judge.comparison import compare_rows

st.title("Compare runs")
ui.intro("Pick two runs to see what a change of settings did. The table gives every headline number of one group "
         "in both runs, their difference B − A and its 95% interval: the change is real where the interval does not "
         "include 0. Below: both verdicts, the accuracy distributions and every setting that differs.")

names = data.list_run_names()
if not names:
    ui.no_runs()
    st.stop()
if len(names) < 2:
    st.info("Comparing needs two runs; launch another one on the New run page.")
    st.stop()
current = st.session_state.get(ui.RUN_KEY)
c1, c2, c3 = st.columns([2, 2, 1])
name_a = c1.selectbox("Run A", names, index=names.index(current) if current in names else 0, key="cmp_a")
others = [n for n in names if n != name_a]
finished = [n for n in others if data.run_summary(RunDir(data.root() / n)) == "done"]
name_b = c2.selectbox("Run B", names, index=names.index((finished or others)[0]), key="cmp_b",
                      help="By default the newest finished run other than A.")
runs = {}
for name in (name_a, name_b):
    try:
        runs[name] = RunDir(safe_run_path(name, data.root()))
    except RunError as exc:
        st.error(str(exc))

accuracies, cards, complete = {}, {}, {}
if name_a == name_b:
    st.info("Run A and run B are the same run; pick two different ones.")
else:
    for name, run in runs.items():
        with ui.guard(run):
            if ui.need(run, "evaluate", f"{name}'s numbers"):
                accuracies[name] = data.accuracy(run)
                table = data.table(run)
                cards[name], complete[name] = table.rows, table.complete

if len(cards) == 2:
    common = [g for g in cards[name_a] if g in cards[name_b]]
    group = c3.selectbox("Group", common, index=common.index("generated") if "generated" in common else 0,
                         key="cmp_group")
    differences = compare_rows(cards[name_a][group], cards[name_b][group])
    st.subheader(f"{group}: B − A")
    st.dataframe(tables.difference_frame(differences, f"A: {name_a}", f"B: {name_b}"), hide_index=True,
                 width="stretch", key="cmp_diff_table", height=38 + 35 * len(differences))
    st.caption("95% interval of B − A from the two runs' own bootstrap intervals (MOVER, Zou & Donner 2008: the "
               "runs are independent samples). Counts and the ensemble gain have no interval. Fidelity numbers "
               "appear once the analysis measures them."
               + ("" if all(complete.values()) else " One run's analysis is not current: only accuracy is compared."))
    verdicts = {name: data.verdict(run) for name, run in runs.items()}
    cols = st.columns(2)
    for col, (name, result) in zip(cols, verdicts.items()):
        with col.container(border=True):
            st.markdown(f"**{name}**")
            st.markdown(result.headline if result is not None else "No verdict yet (the analysis is not current).")
            for caveat in result.caveats if result is not None else ():
                st.caption(f":material/warning: {caveat}")

if len(accuracies) == 2:
    common = [g for g in accuracies[name_a] if g in accuracies[name_b]]
    chosen = st.multiselect("Groups", common, default=[g for g in common if g in ("zoo", "generated")] or common[:2],
                            key="cmp_groups")
    st.plotly_chart(figures.compare_accuracy({n: {g: acc[g] for g in chosen} for n, acc in accuracies.items()}),
                    key="cmp_chart")

if len(runs) == 2 and name_a != name_b:
    st.subheader("Settings that differ")
    with ui.guard():
        diff = tables.config_diff(data.config_dict(runs[name_a]), data.config_dict(runs[name_b]))
        if diff.empty:
            st.caption("Same config.")
        else:
            st.dataframe(diff.rename(columns={"A": name_a, "B": name_b}), hide_index=True, width="stretch",
                         key="cmp_diff")
