// ipywidgets' HTML manager typesets widget labels through the MathJax 2 API
// (MathJax.Hub.Queue); this book loads MathJax 3, which has no Hub. On a page with both
// math and widgets that call throws. Give it the one call it uses, mapped to MathJax 3.
(function () {
  function shim() {
    var mj = window.MathJax;
    if (mj && !mj.Hub) {
      mj.Hub = {
        Queue: function (job) {
          var el = Array.isArray(job) ? job[2] : undefined;
          if (window.MathJax.typesetPromise) {
            window.MathJax.typesetPromise(el ? [el] : undefined).catch(function () {});
          }
        },
      };
    }
  }
  shim();
  document.addEventListener("DOMContentLoaded", shim);
  window.addEventListener("load", shim);
})();
