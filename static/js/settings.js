// The shown conversation's settings: model (picked from /api/models or typed), temperature and
// system prompt. Each edit is stored with that conversation.

import * as api from "./api.js";

const $ = (id) => document.getElementById(id);

export class SettingsPanel {
  constructor(store) {
    this.store = store;
    const model = $("model");
    model.addEventListener("input", () => {
      // An empty box is mid-edit, not a model: keep the last one until something is typed.
      if (model.value.trim()) this.update({ model: model.value.trim() });
    });
    model.addEventListener("change", () => {
      model.value = store.active.model;
    });
    $("temperature").addEventListener("input", () => {
      this.update({ temperature: Number($("temperature").value) });
      $("temperature-value").value = store.active.temperature;
    });
    $("system-prompt").addEventListener("input", () => {
      this.update({ systemPrompt: $("system-prompt").value });
    });
    $("toggle-settings").addEventListener("click", () => {
      const open = $("settings").hidden;
      $("settings").hidden = !open;
      $("toggle-settings").setAttribute("aria-expanded", String(open));
    });
  }

  update(changes) {
    Object.assign(this.store.active, changes);
    this.store.saveSoon();
  }

  show(conversation) {
    $("model").value = conversation.model;
    $("temperature").value = conversation.temperature;
    $("temperature-value").value = conversation.temperature;
    $("system-prompt").value = conversation.systemPrompt;
  }

  async loadModels() {
    try {
      const models = await api.listModels();
      $("model-options").replaceChildren(
        ...models.map((model) => new Option(model.name ?? model.id, model.id)),
      );
      $("models-status").textContent = `${models.length} models listed; any model id can be typed.`;
    } catch (error) {
      $("models-status").textContent = `The models list did not load (${error.message}); type a model id.`;
    }
  }
}
