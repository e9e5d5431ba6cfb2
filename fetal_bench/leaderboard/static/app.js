// fetal-bench leaderboard: sortable tables and a text filter.
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

  function setupFilter() {
    var box = document.querySelector(".filter");
    var input = document.getElementById("lb-filter");
    if (!box || !input) {
      return;
    }
    box.hidden = false;
    var status = box.querySelector(".filter-status");
    var rows = document.querySelectorAll("table[data-filterable] tbody tr");

    function apply() {
      var query = input.value.trim().toLowerCase();
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var match = !query || row.textContent.toLowerCase().indexOf(query) !== -1;
        row.hidden = !match;
        if (match) {
          shown += 1;
        }
      });
      if (status) {
        status.textContent = query ? shown + " of " + rows.length + " rows shown" : "";
      }
    }

    input.addEventListener("input", apply);
    apply();
  }

  function init() {
    var data = readData();
    var tables = data.tables || {};
    Array.prototype.forEach.call(document.querySelectorAll("table[data-sortable]"), function (table) {
      setupTable(table, tables[table.id]);
    });
    setupFilter();
    document.documentElement.classList.add("js");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
