// Draws the dashboard's charts from the JSON the page embeds (json_script: no inline code).
(function () {
  "use strict";
  const source = document.getElementById("dashboard-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const percent = (v) => (v === null ? null : Math.round(v * 1000) / 10);

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (canvas) new Chart(canvas, { ...config, options: { animation: false, maintainAspectRatio: false, ...config.options } });
  }

  const models = data.strengths.map((s) => s.model);
  draw("chart-strengths", {
    data: {
      labels: models,
      datasets: [
        { type: "bar", label: "95% interval", data: data.strengths.map((s) => [s.low, s.high]), backgroundColor: "rgba(11,92,173,0.25)" },
        { type: "scatter", label: "Strength", data: data.strengths.map((s, i) => ({ x: models[i], y: s.strength })), backgroundColor: "#0b5cad", pointRadius: 5 },
        { type: "line", label: "Win rate (right axis, %)", data: data.strengths.map((s) => percent(s.win_rate)), yAxisID: "rate", borderColor: "#17753a", backgroundColor: "#17753a", showLine: false, pointStyle: "rectRot", pointRadius: 6 },
      ],
    },
    options: { scales: { y: { title: { display: true, text: "log-strength" } }, rate: { position: "right", min: 0, max: 100 } } },
  });

  const contractors = Object.keys(data.position_bias.by_contractor);
  draw("chart-bias", {
    type: "bar",
    data: { labels: contractors, datasets: [{ label: "Slot A wins (%)", data: contractors.map((c) => percent(data.position_bias.by_contractor[c])), backgroundColor: "#8a5a00" }] },
    options: { scales: { y: { min: 0, max: 100 } } },
  });

  const scoreModels = Object.keys(data.mean_scores);
  const axes = scoreModels.length ? Object.keys(data.mean_scores[scoreModels[0]]) : [];
  draw("chart-scores", {
    type: "bar",
    data: { labels: axes, datasets: scoreModels.map((m) => ({ label: m, data: axes.map((a) => data.mean_scores[m][a]) })) },
    options: { scales: { y: { min: 1, max: 5, title: { display: true, text: "mean score" } } } },
  });

  const days = Array.from(new Set([...Object.keys(data.submissions_per_day), ...Object.keys(data.reviews_per_day)])).sort();
  draw("chart-throughput", {
    type: "line",
    data: {
      labels: days,
      datasets: [
        { label: "Submissions", data: days.map((d) => data.submissions_per_day[d] || 0), borderColor: "#0b5cad" },
        { label: "Decisions", data: days.map((d) => data.reviews_per_day[d] || 0), borderColor: "#b3261e" },
      ],
    },
  });
})();
