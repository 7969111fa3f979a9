"""The app's tabs (Ask with its Explain section, Compare, Errors): each builds and wires its own components; tabs share only modules in vqa_demo/ui."""
