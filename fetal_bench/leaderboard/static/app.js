// fetal-bench leaderboard: sortable tables, filters (text, training data, zero-shot) and collapsible columns.
//
// The tables arrive fully rendered, in rank order, so a page works without this script. The
// values to sort on come from the JSON block the build embeds (#leaderboard-data), not from the
// cell text, so "0.912 [0.88, 0.94]" sorts as 0.912 and a missing score as missing. Rows are only
// moved or hidden: nothing here writes HTML, so no text from a result file is ever parsed as markup.
(function () {
  "use strict";

  function readData() {
    var node = document.getElementById("leaderboard-data");
    if (!node) {
      return { tables: {} };
    }
    try {
      return JSON.parse(node.textContent || "{}");
    } catch (error) {
      return { tables: {} };
    }
  }

  // Missing values (null) always go last, whichever the direction: "no score" is never the best.
  function compare(a, b, type, sign) {
    var aMissing = a === null || a === undefined;
    var bMissing = b === null || b === undefined;
    if (aMissing || bMissing) {
      return aMissing === bMissing ? 0 : aMissing ? 1 : -1;
    }
    if (type === "num") {
      return sign * (a - b);
    }
    return sign * String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: "base" });
  }

  function setupTable(table, spec) {
    var tbody = table.tBodies[0];
    if (!tbody || !spec) {
      return;
    }
    var columns = spec.columns;
    var rowsById = {};
    Array.prototype.forEach.call(tbody.rows, function (row) {
      rowsById[row.getAttribute("data-row")] = row;
    });
    var headers = table.querySelectorAll("th[data-col]");
    // The build renders the rows in rank order; the first sortable column is the rank.
    var state = { key: columns.length ? columns[0].key : null, dir: "asc" };

    function indexOf(key) {
      for (var i = 0; i < columns.length; i += 1) {
        if (columns[i].key === key) {
          return i;
        }
      }
      return -1;
    }

    function sortBy(key, dir) {
      var index = indexOf(key);
      if (index < 0) {
        return;
      }
      var type = columns[index].type;
      var sign = dir === "desc" ? -1 : 1;
      // Ties keep rank order (the build's order), so sorting is stable and predictable.
      var order = spec.order.slice();
      var position = {};
      order.forEach(function (id, i) {
        position[id] = i;
      });
      order.sort(function (a, b) {
        var result = compare(spec.rows[a][index], spec.rows[b][index], type, sign);
        return result !== 0 ? result : position[a] - position[b];
      });
      order.forEach(function (id) {
        if (rowsById[id]) {
          tbody.appendChild(rowsById[id]);
        }
      });
      state.key = key;
      state.dir = dir;
      Array.prototype.forEach.call(headers, function (th) {
        var active = th.getAttribute("data-col") === key;
        th.setAttribute("aria-sort", active ? (dir === "asc" ? "ascending" : "descending") : "none");
      });
    }

    Array.prototype.forEach.call(headers, function (th) {
      var button = th.querySelector("button.sort");
      if (!button) {
        return;
      }
      button.addEventListener("click", function () {
        var key = th.getAttribute("data-col");
        var column = columns[indexOf(key)];
        // First click: the column's natural direction (best first for scores); again: reversed.
        var dir = key === state.key ? (state.dir === "asc" ? "desc" : "asc") : column.first;
        sortBy(key, dir);
      });
    });
    Array.prototype.forEach.call(headers, function (th) {
      if (!th.hasAttribute("aria-sort")) {
        th.setAttribute("aria-sort", "none");
      }
    });
  }

  // The text filter and, on task pages, the training-data checkboxes and the zero-shot switch.
  // A row shows when it passes all three; the rows carry data-training and data-zero-shot.
  function setupFilter() {
    var box = document.querySelector(".filter");
    var input = document.getElementById("lb-filter");
    if (!box || !input) {
      return;
    }
    box.hidden = false;
    var status = box.querySelector(".filter-status");
    var rows = document.querySelectorAll("table[data-filterable] tbody tr");
    var kinds = box.querySelectorAll("input.filter-training");
    var zeroShot = box.querySelector("input.filter-zero-shot");

    function allowedKinds() {
      var allowed = {};
      var restricted = false;
      Array.prototype.forEach.call(kinds, function (box) {
        allowed[box.value] = box.checked;
        restricted = restricted || !box.checked;
      });
      return restricted ? allowed : null;
    }

    function apply() {
      var query = input.value.trim().toLowerCase();
      var allowed = allowedKinds();
      var onlyZeroShot = zeroShot ? zeroShot.checked : false;
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var match = !query || row.textContent.toLowerCase().indexOf(query) !== -1;
        var kind = row.getAttribute("data-training");
        if (match && allowed && kind !== null) {
          // A row of unknown training data is hidden as soon as any kind is unticked.
          match = allowed[kind] === true;
        }
        if (match && onlyZeroShot && row.hasAttribute("data-zero-shot")) {
          match = row.getAttribute("data-zero-shot") === "yes";
        }
        row.hidden = !match;
        if (match) {
          shown += 1;
        }
      });
      if (status) {
        var active = query || allowed || onlyZeroShot;
        status.textContent = active ? shown + " of " + rows.length + " rows shown" : "";
      }
    }

    input.addEventListener("input", apply);
    Array.prototype.forEach.call(kinds, function (box) {
      box.addEventListener("change", apply);
    });
    if (zeroShot) {
      zeroShot.addEventListener("change", apply);
    }
    apply();
  }

  // Optional columns collapse so a ranking fits the screen; one button per table shows them.
  function setupColumnToggles() {
    Array.prototype.forEach.call(document.querySelectorAll("button.more-columns"), function (button) {
      var table = document.getElementById(button.getAttribute("data-table"));
      if (!table) {
        return;
      }
      var label = button.textContent;
      button.hidden = false;
      button.addEventListener("click", function () {
        var open = table.classList.toggle("show-all");
        button.setAttribute("aria-expanded", open ? "true" : "false");
        button.textContent = open ? "Show fewer columns" : label;
      });
    });
  }

  function init() {
    var data = readData();
    var tables = data.tables || {};
    Array.prototype.forEach.call(document.querySelectorAll("table[data-sortable]"), function (table) {
      setupTable(table, tables[table.id]);
    });
    setupFilter();
    setupColumnToggles();
    document.documentElement.classList.add("js");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
