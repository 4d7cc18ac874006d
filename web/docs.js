"use strict";

// Shows /api/openapi.json with the vendored Swagger UI (web/vendor/README.md).

const TOKEN_KEY = "deploy-service-token";

function showDocs() {
  const ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The default sends the description to a validator on the internet.
    validatorUrl: null,
    onComplete: () => {
      // Signed in on the deploy page in this tab: "Try it out" works at once.
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) {
        ui.preauthorizeApiKey("token", `Token ${token}`);
      }
    },
  });
}

document.addEventListener("DOMContentLoaded", showDocs);
