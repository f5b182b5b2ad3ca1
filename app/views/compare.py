"""Compare: two runs side by side: accuracy distributions, scorecards and config differences."""
import streamlit as st

from app import data, figures, tables, ui
from pdiff.runs import RunDir, RunError, safe_run_path

st.title("Compare runs")
ui.intro("Pick two runs to see what a change of settings did. The violins put the same group of both runs next "
         "to each other, the scorecards give the numbers, and the last table lists every setting that differs.")

names = data.list_run_names()
if not names:
    ui.no_runs()
    st.stop()
if len(names) < 2:
    st.info("Comparing needs two runs; launch another one on the New run page.")
    st.stop()
current = st.session_state.get(ui.RUN_KEY)
c1, c2 = st.columns(2)
name_a = c1.selectbox("Run A", names, index=names.index(current) if current in names else 0, key="cmp_a")
others = [n for n in names if n != name_a]
finished = [n for n in others if data.run_summary(RunDir(data.root() / n)) == "done"]
name_b = c2.selectbox("Run B", names, index=names.index((finished or others)[0]), key="cmp_b",
                      help="By default the newest finished run other than A.")
runs = {}
for col, name in ((c1, name_a), (c2, name_b)):
    with col:
        try:
            runs[name] = RunDir(safe_run_path(name, data.root()))
        except RunError as exc:
            st.error(str(exc))

accuracies, cards = {}, {}
for col, (name, run) in zip((c1, c2), runs.items()):
    with col, ui.guard(run):
        if ui.need(run, "evaluate", f"{name}'s accuracies"):
            accuracies[name] = data.accuracy(run)
            cards[name] = data.scorecard(run)
            st.caption(f"**{name}**")
            st.dataframe(tables.scorecard_frame(cards[name], tables.ACCURACY), width="stretch", key=f"cmp_card_{name}",
                         column_config={c: st.column_config.NumberColumn(format="%.2f")
                                        for c in ("best", "mean", "median", "min", "std")})

if len(accuracies) == 2 and name_a != name_b:
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
