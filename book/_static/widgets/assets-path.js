// Tell the widget manager (embed-amd.js) to load its font files from this folder,
// not from a path relative to each page.
window.__jupyter_widgets_assets_path__ = new URL("./", document.currentScript.src).href;
