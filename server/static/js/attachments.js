// Images for the next message: picked, pasted or dropped, kept as data URLs (the server takes
// bodies up to 16 MiB) and sent as `image_url` content parts.

const MAX_TOTAL_BYTES = 12 * 1024 * 1024; // room under the server's 16 MiB for the rest

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export class Attachments {
  // onError(text): an image could not be added.
  constructor({ list, button, input, dropZone, pasteTarget }, onError) {
    this.list = list;
    this.onError = onError;
    this.images = [];
    button.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      this.add([...input.files]);
      input.value = "";
    });
    pasteTarget.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData?.files ?? [])];
      if (files.some((file) => file.type.startsWith("image/"))) {
        event.preventDefault();
        this.add(files);
      }
    });
    dropZone.addEventListener("dragover", (event) => {
      if (event.dataTransfer?.types.includes("Files")) event.preventDefault();
    });
    dropZone.addEventListener("drop", (event) => {
      const files = [...(event.dataTransfer?.files ?? [])];
      if (!files.length) return;
      event.preventDefault();
      this.add(files);
    });
  }

  async add(files) {
    for (const file of files) {
      if (!file.type.startsWith("image/")) {
        this.onError(`${file.name} is not an image.`);
        continue;
      }
      const total = this.images.reduce((sum, url) => sum + url.length, 0);
      if (total + file.size * 1.4 > MAX_TOTAL_BYTES) {
        this.onError(`${file.name} is too large: images of one message may total about 12 MB.`);
        continue;
      }
      this.images.push(await readAsDataUrl(file));
    }
    this.render();
  }

  take() {
    const images = this.images;
    this.images = [];
    this.render();
    return images;
  }

  render() {
    this.list.hidden = this.images.length === 0;
    this.list.replaceChildren(
      ...this.images.map((url, index) => {
        const item = document.createElement("li");
        const image = document.createElement("img");
        image.src = url;
        image.alt = `Attached image ${index + 1}`;
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "button icon-button";
        remove.textContent = "✕";
        remove.setAttribute("aria-label", `Remove attached image ${index + 1}`);
        remove.addEventListener("click", () => {
          this.images.splice(index, 1);
          this.render();
        });
        item.append(image, remove);
        return item;
      }),
    );
  }
}
