// placeholder until the widget lands
