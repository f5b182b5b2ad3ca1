"""The Streamlit explorer: `streamlit run app/main.py` (router + sidebar), thin pages in `views/`,
figure and table builders as pure functions, cached loaders in `data.py`, background runs in
`launcher.py`. All computation lives in `pdiff`."""
