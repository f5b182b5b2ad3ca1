"""New run: a validated form that launches `python -m pdiff run` in the background."""
import streamlit as st

from app import data, launcher, ui
from pdiff.core import config as cfg
from pdiff.core.errors import ConfigError, RunError
from pdiff.core.presets import PRESET_HELP, PRESET_OVERRIDES, preset
from pdiff.core.registry import SAMPLERS
from pdiff.core.rundir import safe_run_path

st.title("New run")
ui.intro("Choose a preset and the main sizes, then launch: the run builds in the background with the same "
         "code as `python -m pdiff run`, its progress shows in the sidebar, and the other pages fill in as its "
         "stages finish. Fewer checkpoints and steps make a quicker, rougher run; every value is checked before "
         "anything starts. To resume a stopped run, select it and press *Resume* in the sidebar (or run "
         "`python -m pdiff run --out DIR`, which resumes an existing run with its stored config).")

preset_name = st.selectbox("Preset", list(PRESET_OVERRIDES), key="new_preset",
                           format_func=lambda p: f"{p}: {PRESET_HELP.get(p, '')}")
base = preset(preset_name)
FIELDS = [  # (config key, label, help)
    ("collect.num_checkpoints", "Zoo checkpoints (K)", "how many checkpoints of the target parameters to save"),
    ("autoencoder.steps", "Autoencoder steps", "training steps of the parameter autoencoder"),
    ("diffusion.steps", "Diffusion steps", "training steps of the latent denoiser"),
    ("sample.num_models", "Models to generate (N)", "how many parameter vectors to sample"),
    ("seed", "Seed", "the same seed gives the same run"),
]
with st.form("new_run_form"):
    name = st.text_input("Run name", key=f"new_name_{preset_name}",
                         placeholder="blank: the preset's name, plus a config hash when anything is changed",
                         help=f"A folder directly under {data.root()}")
    cols = st.columns(3)
    values = {}
    for i, (key, label, help_text) in enumerate(FIELDS):
        values[key] = cols[i % 3].number_input(label, value=int(cfg.get(base, key)), step=1, help=help_text,
                                               key=f"new_{key}_{preset_name}")
    samplers = list(SAMPLERS)
    values["sample.sampler"] = cols[2].selectbox("Sampler", samplers, index=samplers.index(base.sample.sampler),
                                                 key=f"new_sampler_{preset_name}",
                                                 help="; ".join(f"{n}: {c.help}" for n, c in SAMPLERS.items()))
    values["sample.steps"] = cols[0].number_input("Sampling steps (0: the sampler's default)",
                                                  value=base.sample.steps, step=1, min_value=0,
                                                  key=f"new_steps_{preset_name}")
    values["analysis.umap"] = cols[1].checkbox("UMAP projections", value=base.analysis.umap,
                                               key=f"new_umap_{preset_name}",
                                               help="UMAP's first fit costs ~10-20 s of compilation")
    extra = st.text_area("More settings (one key=value per line)", key=f"new_extra_{preset_name}",
                         placeholder="classifier.epochs=10\nautoencoder.latent_dim=32",
                         help="Any key listed by `python -m pdiff presets --keys`.")
    problem = st.empty()  # errors show here, beside the button the user just pressed
    submitted = st.form_submit_button("Launch run", type="primary")

if submitted:
    try:
        overrides = {k: v for k, v in values.items() if v != cfg.get(base, k)}
        overrides |= cfg.parse_set([line.strip() for line in extra.splitlines() if line.strip()])
        config = cfg.with_overrides(base, overrides)  # ConfigError: one line that names the key
        run_name = name.strip() or (preset_name if not overrides else f"{preset_name}-{cfg.config_hash(config)}")
        path = safe_run_path(run_name, data.root())
        launcher.launch(path, preset_name, overrides)
    except (ConfigError, RunError, OSError) as exc:
        problem.error(str(exc), icon=":material/warning:")
        st.toast(f"Not launched: {exc}", icon=":material/warning:")
    else:
        ui.select_run(run_name)
        st.success(f"Started {run_name}: `{' '.join(launcher.command(path, preset_name, overrides)[1:])}`")
        st.rerun()
