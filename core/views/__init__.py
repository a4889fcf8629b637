"""Pages and htmx endpoints. Views read through selectors and write through
forms and services; none of them talks to an external client."""
