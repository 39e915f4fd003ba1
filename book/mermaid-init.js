// Draw every <pre class="mermaid"> once the page has loaded (book/build_site.py turns ```mermaid blocks into those).
document.addEventListener("DOMContentLoaded", () => {
  mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
  mermaid.run({ querySelector: "pre.mermaid" });
});
